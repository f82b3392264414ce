"""How long greedy answers take at two batch sizes: the quickstart's 74 questions asked of the default model,
the sizes alternating in one process (A B A B), with the answers compared.

usage: python benchmarks/answer_batches.py [--rounds 2] [--sizes 16 64]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.evaluation import read_probes
from sleeptrain.examples import example_path
from sleeptrain.models import default_model_path, generate_answers


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--sizes", type=int, nargs=2, default=[16, 64])
    args = parser.parse_args()
    probes = read_probes(example_path("people/probes.jsonl")) + read_probes(example_path("general_knowledge.jsonl"))
    questions = [p.question for p in probes]
    path = default_model_path()
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    seconds: dict[int, list[float]] = {size: [] for size in args.sizes}
    answers: dict[int, list[str]] = {}
    for _ in range(args.rounds):
        for size in args.sizes:
            started = time.perf_counter()
            answers[size] = generate_answers(model, tokenizer, questions, batch_size=size)
            seconds[size].append(round(time.perf_counter() - started, 1))
    baseline, new = args.sizes
    print(f"{len(questions)} questions, {torch.get_num_threads()} threads")
    for size in args.sizes:
        print(f"batch_size {size}: {seconds[size]} s")
    ratio = statistics.median(seconds[baseline]) / statistics.median(seconds[new])
    print(f"speed-up of {new} over {baseline}: {ratio:.2f}x")
    same = sum(a == b for a, b in zip(answers[baseline], answers[new], strict=True))
    print(f"identical answers: {same} of {len(questions)}")


if __name__ == "__main__":
    main()
