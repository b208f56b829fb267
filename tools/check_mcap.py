#!/usr/bin/env python3
"""Open a Reflex recording with the `mcap` Python reader, as Foxglove-style tools would.

    pip install mcap
    python tools/check_mcap.py LOG.mcap [--allow-cut]

Checks: the four channels and their encodings, the JSON schemas of /imu/samples and
/reflex/predictions (every message parses as JSON with the schema's required keys), the
`reflex` metadata (config text, weights and plugin hashes), and that /imu/samples and
/reflex/predictions are numbered without repeats. Prints a summary; exits 1 on a problem.
A recording cut short (kill -9) has no summary section: pass --allow-cut to read it with the
non-seeking reader, up to its last complete chunk.
"""

import argparse
import json
import sys
from collections import Counter

from mcap.reader import NonSeekingReader, make_reader

EXPECTED = {
    "/imu/raw": ("", None),
    "/imu/samples": ("json", "reflex.Sample"),
    "/reflex/predictions": ("json", "reflex.Prediction"),
    "/reflex/events": ("json", "reflex.Event"),
}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("log")
    ap.add_argument("--allow-cut", action="store_true")
    args = ap.parse_args()
    problems = []
    counts = Counter()
    seen = {}
    with open(args.log, "rb") as f:
        reader = NonSeekingReader(f) if args.allow_cut else make_reader(f)
        metadata = {}
        if not args.allow_cut:
            for m in reader.iter_metadata():
                metadata[m.name] = m.metadata
        try:
            for schema, channel, message in reader.iter_messages():
                counts[channel.topic] += 1
                enc, schema_name = EXPECTED.get(channel.topic, (None, None))
                if enc is None and channel.topic not in EXPECTED:
                    problems.append(f"unexpected channel {channel.topic}")
                    continue
                if channel.message_encoding != enc:
                    problems.append(f"{channel.topic}: encoding {channel.message_encoding!r}")
                if schema_name and (schema is None or schema.name != schema_name or schema.encoding != "jsonschema"):
                    problems.append(f"{channel.topic}: schema {schema and schema.name}")
                if enc == "json":
                    obj = json.loads(message.data)
                    required = json.loads(schema.data).get("required", []) if schema else []
                    missing = [k for k in required if k not in obj]
                    if missing:
                        problems.append(f"{channel.topic}: message without {missing}")
                    key = {"/imu/samples": "sample", "/reflex/predictions": "window"}.get(channel.topic)
                    if key is not None:
                        last = seen.get(channel.topic, -1)
                        if obj[key] <= last:
                            problems.append(f"{channel.topic}: {key} {obj[key]} after {last}")
                        seen[channel.topic] = obj[key]
        except Exception as e:  # a cut recording ends in a partial record
            if not args.allow_cut:
                raise
            print(f"(recording ends early: {type(e).__name__}: {e})")
    if not args.allow_cut:
        meta = metadata.get("reflex")
        if meta is None:
            problems.append("no `reflex` metadata")
        else:
            for key in ("config", "format", "channels"):
                if key not in meta:
                    problems.append(f"metadata without {key}")
            print("metadata:", ", ".join(f"{k}={v[:16]}" for k, v in sorted(meta.items()) if k != "config"))
    print("messages:", dict(counts))
    if problems:
        print("PROBLEMS:\n  " + "\n  ".join(problems))
        sys.exit(1)
    print("OK")


if __name__ == "__main__":
    main()
