"""How separable are the general prompts' inputs from the facts' in each LoRA layer of the default model?

For a few layers, the directions holding a share of the anchor prompts' input energy (the top eigenvectors
of Σ x xᵀ, as `lora_null_space` finds them) are removed, and the share of the energy left is printed for the
held-out facts' questions and for the general-knowledge probes. `lora_null_space` can only help where the
facts keep much more than the probes.

usage: python benchmarks/null_space_spectrum.py
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from sleeptrain.models import default_model_path
from sleeptrain.training.null_space import protected_directions

ROOT = Path(__file__).parent.parent
LAYERS = (2, 10, 20, 28)
MODULES = ("self_attn.q_proj", "self_attn.o_proj", "mlp.down_proj")
ENERGIES = (0.9, 0.99, 0.999)


def questions(path: Path, key: str) -> list[str]:
    return [json.loads(line)[key] for line in path.read_text().splitlines() if line.strip()]


def layer_inputs(model, tokenizer, texts: list[str], names: list[str]) -> dict[str, torch.Tensor]:
    """Every position's input to each named linear layer, over the texts in the chat template."""
    inputs: dict[str, list[torch.Tensor]] = {name: [] for name in names}
    handles = [
        model.get_submodule(name).register_forward_pre_hook(
            lambda module, args, name=name: inputs[name].append(args[0].reshape(-1, args[0].shape[-1]))
        )
        for name in names
    ]
    with torch.no_grad():
        for text in texts:
            chat = tokenizer.apply_chat_template([{"role": "user", "content": text}], tokenize=False)
            model(**tokenizer(chat, return_tensors="pt"))
    for handle in handles:
        handle.remove()
    return {name: torch.cat(rows).double() for name, rows in inputs.items()}


def energy_left(x: torch.Tensor, directions: torch.Tensor) -> float:
    """The share of the rows' energy outside the directions."""
    return float(((x - x @ directions @ directions.T) ** 2).sum() / (x**2).sum())


def main() -> None:
    path = str(default_model_path())
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32).eval()
    names = [f"model.layers.{layer}.{module}" for layer in LAYERS for module in MODULES]
    anchors = layer_inputs(model, tokenizer, questions(ROOT / "data/anchors/prompts.jsonl", "prompt"), names)
    facts = layer_inputs(model, tokenizer, questions(ROOT / "benchmarks/data/heldout_facts.jsonl", "question"), names)
    probes = layer_inputs(model, tokenizer, questions(ROOT / "data/general_knowledge.jsonl", "question"), names)
    for name in names:
        cells = [name]
        for energy in ENERGIES:
            directions = protected_directions(anchors[name].T @ anchors[name], energy).double()

            cells.append(
                f"{energy}: {directions.shape[1]} of {directions.shape[0]} protected, "
                f"facts keep {energy_left(facts[name], directions):.4f}, "
                f"probes {energy_left(probes[name], directions):.4f}"
            )
        print(" | ".join(cells))


if __name__ == "__main__":
    main()
