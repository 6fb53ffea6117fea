"""The call frame: what every later stage reads, and the batch path a large scan takes."""

from __future__ import annotations

import gc

import polars as pl
import pyarrow as pa

from distillwatch.features import CALL_FRAME_SCHEMA, call_frame
from distillwatch.features.calls import call_frame_from_arrow, is_call_frame
from distillwatch.sim import Simulator, load_corpora, load_scenario, shipped_fit


def _calls(n_accounts: int = 60, days: int = 1, seed: int = 3) -> pa.Table:
    res = Simulator(load_scenario(), load_corpora(None), shipped_fit(), seed=seed).run(
        n_accounts, days
    )
    return res.calls


def test_call_frame_columns_and_values() -> None:
    calls = _calls()
    frame = call_frame(pl.from_arrow(calls).lazy()).collect()  # type: ignore[union-attr]
    assert frame.schema == CALL_FRAME_SCHEMA
    assert frame.height == calls.num_rows
    assert is_call_frame(frame) and not is_call_frame(pl.from_arrow(calls))  # type: ignore[arg-type]
    raw = calls.slice(0, 1).to_pylist()[0]
    row = frame.row(0, named=True)
    users = [m["content"] for m in raw["request"]["messages"] if m["role"] == "user"]
    assert row["prompt"] == (users[-1] if users else "")
    assert row["max_tokens"] == raw["request"]["max_tokens"]
    assert row["ip"] == raw["client"]["ip"]
    assert row["output_tokens"] == raw["response"]["usage"]["output_tokens"]


def test_batch_path_equals_the_lazy_path() -> None:
    calls = _calls()
    lazy = call_frame(pl.from_arrow(calls).lazy()).collect()  # type: ignore[union-attr]
    batched = pl.concat(
        [call_frame_from_arrow(calls.slice(i, 97)) for i in range(0, calls.num_rows, 97)]
    )
    assert batched.equals(lazy)


def test_batch_path_lets_the_answers_go() -> None:
    """Keeping a struct field as is must not keep the whole batch (answers included) alive."""
    calls = _calls()
    big = pa.array(["x" * 20_000] * calls.num_rows, pa.string())
    response = calls.column("response").combine_chunks()
    fields = [response.field(i) for i in range(response.type.num_fields)]
    names = [response.type.field(i).name for i in range(response.type.num_fields)]
    fields[names.index("output_text")] = big
    calls = calls.set_column(
        calls.schema.get_field_index("response"),
        "response",
        pa.StructArray.from_arrays(fields, names=names),
    )
    del big, response, fields
    gc.collect()
    before = pa.total_allocated_bytes()
    frame = call_frame_from_arrow(calls)
    size = calls.nbytes
    del calls
    gc.collect()
    assert frame.height > 0
    # the answers alone were 20 KB a call; what stays allocated is far less than the batch
    assert pa.total_allocated_bytes() < before - size // 2
