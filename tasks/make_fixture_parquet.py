#!/usr/bin/env python3
"""Write tasks/<task>/fixture.parquet from tasks/<task>/fixture.jsonl with the column types of
the Hugging Face parquet exports (refs/convert/parquet), snappy-compressed like the exports.

ClassLabel columns are int64, `idx` int32, nested `answers`/`answers_spans` are struct columns
of lists, as `datasets` writes them. zo-tasks' tests read both files and require identical
examples. Run from anywhere: python3 tasks/make_fixture_parquet.py  (needs pyarrow)
"""
import json
import pathlib

import pyarrow as pa
import pyarrow.parquet as pq

S, I32, I64 = pa.string(), pa.int32(), pa.int64()
L = pa.list_
SCHEMAS = {
    "sst2": pa.schema([("sentence", S), ("label", I64), ("idx", I32)]),
    "rte": pa.schema([("premise", S), ("hypothesis", S), ("idx", I32), ("label", I64)]),
    "copa": pa.schema([("premise", S), ("choice1", S), ("choice2", S), ("question", S),
                       ("idx", I32), ("label", I64)]),
    "record": pa.schema([("passage", S), ("query", S), ("entities", L(S)), ("answers", L(S)),
                         ("idx", pa.struct([("passage", I32), ("query", I32)]))]),
    "squad": pa.schema([("id", S), ("title", S), ("context", S), ("question", S),
                        ("answers", pa.struct([("text", L(S)), ("answer_start", L(I32))]))]),
    "drop": pa.schema([("section_id", S), ("query_id", S), ("passage", S), ("question", S),
                       ("answers_spans", pa.struct([("spans", L(S)), ("types", L(S))]))]),
}

root = pathlib.Path(__file__).resolve().parent
for task, schema in SCHEMAS.items():
    rows = [json.loads(l) for l in (root / task / "fixture.jsonl").read_text("utf-8").splitlines() if l.strip()]
    table = pa.Table.from_pylist(rows, schema=schema)
    tmp = root / task / "fixture.parquet.tmp"
    pq.write_table(table, tmp, compression="snappy")
    tmp.replace(root / task / "fixture.parquet")
    print(task, table.num_rows, "rows")
