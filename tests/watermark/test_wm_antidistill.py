"""Antidistillation sampling on a tiny random proxy student (torch only, no download)."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from distillwatch.watermark.antidistill import (  # noqa: E402
    AntidistillationProcessor,
    perturbed_pair,
)


def tiny_student() -> object:
    torch.manual_seed(0)
    cfg = transformers.LlamaConfig(
        vocab_size=50,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return transformers.LlamaForCausalLM(cfg)


def test_bias_favours_tokens_that_raise_the_students_downstream_loss() -> None:
    student = tiny_student()
    task = torch.randint(0, 50, (4, 12))
    batches = [{"input_ids": task, "labels": task}]
    base_loss = float(student(**batches[0]).loss)
    plus, minus = perturbed_pair(student, batches, eps=1e-3)
    proc = AntidistillationProcessor(plus, minus, lam=1.0, eps=1e-3)
    prefix = torch.randint(0, 50, (1, 6))
    delta = proc.delta(prefix)[0]
    hi, lo = int(delta.argmax()), int(delta.argmin())

    def loss_after_step(token: int) -> float:
        s = tiny_student()
        opt = torch.optim.SGD(s.parameters(), lr=0.5)
        seq = torch.cat([prefix, torch.tensor([[token]])], dim=1)
        labels = torch.full_like(seq, -100)
        labels[0, -1] = token
        s(input_ids=seq, labels=labels).loss.backward()
        opt.step()
        with torch.no_grad():
            return float(s(**batches[0]).loss)

    # training the student on the favoured token hurts its downstream loss more
    assert loss_after_step(hi) > loss_after_step(lo)
    scores = torch.zeros(1, 60)
    out = proc(prefix, scores)
    assert torch.allclose(out[0, :50], delta) and torch.all(out[0, 50:] == 0)
    assert float(student(**batches[0]).loss) == pytest.approx(base_loss)  # student untouched


def test_cached_steps_give_the_same_bias_as_whole_sequences() -> None:
    student = tiny_student()
    task = torch.randint(0, 50, (4, 12))
    plus, minus = perturbed_pair(student, [{"input_ids": task, "labels": task}], eps=1e-2)
    cached = AntidistillationProcessor(plus, minus, eps=1e-2)
    whole = AntidistillationProcessor(plus, minus, eps=1e-2, cache=False)
    for _ in range(2):  # a second batch (a new sequence) resets the cache
        ids = torch.randint(0, 50, (3, 5))
        for _ in range(4):
            assert torch.allclose(cached.delta(ids), whole.delta(ids), atol=1e-3)
            ids = torch.cat([ids, torch.randint(0, 50, (3, 1))], dim=1)
    assert cached._seen is not None and whole._seen is None


def test_random_direction_control_moves_as_far_and_reads_no_batch() -> None:
    student = tiny_student()
    before = [p.detach().clone() for p in student.parameters()]
    plus, minus = perturbed_pair(student, [], eps=1e-2, random_seed=3)
    diff = torch.sqrt(
        sum(
            ((a - b) ** 2).sum() for a, b in zip(plus.parameters(), minus.parameters(), strict=True)
        )
    )
    assert float(diff) == pytest.approx(2e-2, rel=1e-3)  # |(θ+εg) − (θ−εg)| = 2ε, g unit
    again, _ = perturbed_pair(tiny_student(), [], eps=1e-2, random_seed=3)
    other, _ = perturbed_pair(tiny_student(), [], eps=1e-2, random_seed=4)
    first = next(iter(plus.parameters()))
    assert torch.equal(first, next(iter(again.parameters())))  # seeded: reproducible
    assert not torch.equal(first, next(iter(other.parameters())))
    # the gradient direction needs the downstream batches; the control does not touch them
    with pytest.raises(ValueError, match="no downstream batches"):
        perturbed_pair(student, [], eps=1e-2)
    assert all(torch.equal(a, b) for a, b in zip(before, student.parameters(), strict=True))
    assert all(p.grad is None for p in student.parameters())
