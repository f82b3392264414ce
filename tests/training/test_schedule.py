"""The epochs of a `train` run: every example once per epoch in its next phrasing, until it is learnt; then
only spaced reviews, and the run ends when every example is learnt."""

from __future__ import annotations

from sleeptrain.data.mixing import ExampleRows
from sleeptrain.training.schedule import EpochBatches, Learning


def three_examples_two_phrasings(anchors: int = 0, anchors_per_epoch: int = 0) -> ExampleRows:
    """Examples 0, 1, 2 at rows (0, 1), (2, 3), (4, 5); anchors at rows 6, 7, ..."""
    return ExampleRows(
        phrasings=[[0, 1], [2, 3], [4, 5]],
        anchors=list(range(6, 6 + anchors)),
        anchors_per_epoch=anchors_per_epoch,
        lengths=[10] * (6 + anchors),
    )


def epochs_of(batches: EpochBatches, trained=None) -> list[set[int]]:
    """The rows of each epoch the sampler yields; `trained(epoch, batch)` runs after each batch, as the
    trainer's loss records what it showed."""
    epochs: list[set[int]] = []
    current = None
    for batch in batches:
        if current != batches.epochs_planned:
            current = batches.epochs_planned
            epochs.append(set())
        epochs[-1].update(batch)
        if trained:
            trained(len(epochs) - 1, batch)
    return epochs


def test_an_example_is_learnt_after_enough_reproduced_sightings_in_a_row():
    learning = Learning(examples=2, learnt_after=2)
    learning.record(0, True)
    learning.record(0, False)  # a miss starts the count again
    learning.record(0, True)
    assert not learning.learnt(0)
    learning.record(0, True)
    assert learning.learnt(0) and not learning.learnt(1)
    assert learning.learnt_count() == 1 and not learning.all_learnt()
    learning.record(-1, True)  # anchors (example -1) are not examples
    assert learning.learnt_count() == 1


def test_a_learnt_example_comes_back_for_reviews_at_growing_intervals():
    learning = Learning(examples=1, learnt_after=2)
    learning.record(0, True)
    learning.record(0, True)
    learning.last_epoch[0] = 5
    assert [learning.due(0, epoch) for epoch in (6, 7)] == [False, True]  # two epochs on
    learning.record(0, True)  # the review went well: four epochs until the next
    assert [learning.due(0, epoch) for epoch in (8, 9)] == [False, True]
    learning.record(0, False)  # forgotten: back in every epoch
    assert learning.due(0, 6)


def test_without_learning_every_example_comes_every_epoch_in_its_next_phrasing():
    rows = three_examples_two_phrasings(anchors=4, anchors_per_epoch=2)
    batches = EpochBatches(rows, Learning(3, learnt_after=0), epochs=3, batch_size=2, seed=0)

    epochs = epochs_of(batches)

    assert [sorted(rows_ & {0, 1, 2, 3, 4, 5}) for rows_ in epochs] == [[0, 2, 4], [1, 3, 5], [0, 2, 4]]
    # Two anchors an epoch, each used once before any is used twice.
    assert [sorted(rows_ - {0, 1, 2, 3, 4, 5}) for rows_ in epochs] == [[6, 7], [8, 9], [6, 7]]
    assert sum(1 for _ in EpochBatches(rows, Learning(3, 0), epochs=3, batch_size=2, seed=0)) == len(batches)


def test_learnt_examples_leave_the_epochs_with_their_share_of_anchors_and_the_run_ends():
    rows = three_examples_two_phrasings(anchors=6, anchors_per_epoch=3)
    learning = Learning(3, learnt_after=1)
    batches = EpochBatches(rows, learning, epochs=10, batch_size=2, seed=0)

    def example_0_learnt_first_then_the_rest(epoch: int, batch: list[int]) -> None:
        for row in batch:
            example = row // 2 if row < 6 else -1
            learning.record(example, example == 0 or epoch >= 1)

    epochs = epochs_of(batches, example_0_learnt_first_then_the_rest)

    assert epochs[0] >= {0, 2, 4} and len(epochs[0]) == 6  # three examples, three anchors
    # Example 0 is learnt: epoch 1 trains examples 1 and 2 (in their second phrasing) and two anchors.
    assert epochs[1] & {0, 1, 2, 3, 4, 5} == {3, 5} and len(epochs[1]) == 4
    # After epoch 1 every example is learnt: a last epoch shows them all (and its anchors) to check them; all
    # are still written, so the run ends, well before ten epochs.
    assert len(epochs) == 3 and epochs[2] >= {0, 2, 4} and len(epochs[2]) == 6
    assert batches.epochs_done() == 3 and len(batches) == 10 * 3


def test_an_example_that_slipped_since_it_was_learnt_is_learnt_again():
    rows = three_examples_two_phrasings()
    learning = Learning(3, learnt_after=1)
    batches = EpochBatches(rows, learning, epochs=10, batch_size=3, seed=0)

    def example_2_slips_once(epoch: int, batch: list[int]) -> None:
        for row in batch:
            learning.record(row // 2, not (row // 2 == 2 and epoch == 1))

    epochs = epochs_of(batches, example_2_slips_once)

    # Epoch 0 learns everything; the check in epoch 1 finds example 2 not written; epoch 2 trains it again,
    # and epoch 3 checks everything once more.
    assert epochs == [{0, 2, 4}, {1, 3, 5}, {4}, {1, 3, 5}]


def test_a_fractional_last_epoch_trains_part_of_an_epoch():
    rows = ExampleRows(phrasings=[[i] for i in range(8)], anchors=[], anchors_per_epoch=0, lengths=[5] * 8)
    batches = EpochBatches(rows, Learning(8, learnt_after=0), epochs=1.5, batch_size=4, seed=0)
    epochs = epochs_of(batches)
    assert [len(e) for e in epochs] == [8, 4]
    assert len(batches) == 3


def test_batches_group_rows_of_similar_length():
    lengths = [5, 50, 6, 51, 7, 52, 8, 53]
    rows = ExampleRows(phrasings=[[i] for i in range(8)], anchors=[], anchors_per_epoch=0, lengths=lengths)
    for batch in EpochBatches(rows, Learning(8, learnt_after=0), epochs=1, batch_size=4, seed=3):
        assert len({lengths[row] > 40 for row in batch}) == 1


def test_optional_examples_do_not_keep_the_run_going():
    """Subject summaries are there to help the facts: once the facts are learnt the run ends, learnt
    summaries or not (they train every epoch until then)."""
    rows = three_examples_two_phrasings()
    rows.optional = frozenset({2})
    learning = Learning(3, learnt_after=1, optional=rows.optional)
    batches = EpochBatches(rows, learning, epochs=10, batch_size=3, seed=0)

    def facts_learnt_summary_never(epoch: int, batch: list[int]) -> None:
        for row in batch:
            learning.record(row // 2, row // 2 != 2)

    epochs = epochs_of(batches, facts_learnt_summary_never)

    # Epoch 0 learns the two facts; epoch 1 checks everything, and the run ends.
    assert epochs == [{0, 2, 4}, {1, 3, 5}] and learning.all_learnt() and learning.learnt_count() == 2


def test_each_epoch_starts_with_its_longest_batch():
    """So that a run takes its largest activation memory first and reuses it (as Trainer's sampler does)."""
    lengths = [5, 50, 6, 51, 7, 52, 8, 53, 9, 10, 11, 12]
    rows = ExampleRows(phrasings=[[i] for i in range(12)], anchors=[], anchors_per_epoch=0, lengths=lengths)
    for seed in range(5):
        batches = list(EpochBatches(rows, Learning(12, learnt_after=0), epochs=1, batch_size=4, seed=seed))
        assert 53 in [lengths[row] for row in batches[0]]


def test_a_batchs_results_are_read_when_they_are_needed():
    """The loss hands over tensors (on a GPU, reading them would wait every step); the record reads them
    when the next epoch is planned, in order, skipping rows without a trained token."""
    import torch

    learning = Learning(3, learnt_after=1)
    learning.record_batch(torch.tensor([0, 1, 2]), torch.tensor([True, True, False]), torch.tensor([True, False, True]))
    learning.record_batch(torch.tensor([-1, 0]), torch.tensor([True, False]), torch.tensor([True, True]))
    assert learning.pending  # nothing read yet
    assert [learning.learnt(e) for e in range(3)] == [False, False, False]  # 0 learnt, then missed; 1 unlabelled
    assert not learning.pending


def test_an_example_not_learnt_after_the_epochs_gets_more_while_the_unused_batches_last():
    """Easy examples leave batches unused: a hard one gets them, with the reviews then due."""
    rows = three_examples_two_phrasings()
    learning = Learning(3, learnt_after=1)
    batches = EpochBatches(rows, learning, epochs=3, batch_size=1, seed=0)

    def example_2_learnt_only_in_epoch_3(epoch: int, batch: list[int]) -> None:
        for row in batch:
            learning.record(row // 2, row // 2 != 2 or epoch >= 3)

    epochs = epochs_of(batches, example_2_learnt_only_in_epoch_3)

    # Epoch 1 trains example 2 alone; epoch 2 brings the others back for review; the recipe's three epochs
    # leave example 2 unlearnt, so a fourth trains it (5 of the run's 9 batches: 3 examples x 3 epochs).
    assert epochs == [{0, 2, 4}, {5}, {0, 2, 4}, {5}]
    assert learning.all_learnt() and batches.epochs_done() == 4


def test_extra_epochs_skip_optional_examples_and_stop_at_the_runs_length():
    rows = three_examples_two_phrasings()
    rows.optional = frozenset({1})  # a subject summary, say
    learning = Learning(3, learnt_after=1, optional=rows.optional)
    batches = EpochBatches(rows, learning, epochs=2, batch_size=1, seed=0)

    def only_example_0_ever_learnt(epoch: int, batch: list[int]) -> None:
        for row in batch:
            learning.record(row // 2, row // 2 == 0)

    epochs = epochs_of(batches, only_example_0_ever_learnt)

    # Epochs 0 and 1 take 5 of the 6 batches; the third epoch would train example 2 and example 0's review,
    # but one batch is left. The summary (example 1, rows 2 and 3) gets no extra epoch.
    assert [len(e) for e in epochs] == [3, 2, 1] and not epochs[2] & {2, 3}
    assert len(batches) == 6 and batches.epochs_done() == 2.5  # half of the third epoch's two batches
