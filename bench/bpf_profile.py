#!/usr/bin/env python3
"""Splits a perf profile of BPF_PROG_RUN calls by BPF program and by the kernel function each program
calls (docs/benchmarks.md, section 5, "Session 7").

    perf record -a -g -F 20000 -o prof.data -- <splice_packets test binary> \\
        first_get_hits_for_a_profile --ignored
    perf script -i prof.data --comm first_get_hits_ -F comm,ip,sym | python3 bench/bpf_profile.py

Only samples taken inside `bpf_test_run` count (the verifier's work while the object loads is left out).
Each is charged to the innermost JIT-ed program on its stack (`bpf_prog_<tag>_<name>`) and to the function
that program called ("own code" when the program itself was running), since a helper's cost belongs to
the call site that asked for it. Percentages are of all counted samples, the harness included.
"""

import collections
import sys


def stacks(lines):
    """Yields each sample's frames (innermost first) as bare symbol names."""
    frames = []
    for line in lines:
        line = line.rstrip()
        if line and line[0] in " \t":
            parts = line.split(None, 1)
            symbol = parts[1] if len(parts) > 1 else "?"
            frames.append(symbol.split("+")[0].split(" ")[0])
            continue
        if frames:
            yield frames
        frames = []
    if frames:
        yield frames


def program_name(frame):
    # bpf_prog_<16 hex digits>_<name>
    return frame.split("_", 3)[-1]


def main():
    by_program = collections.Counter()
    by_call = collections.Counter()
    total = 0
    for frames in stacks(sys.stdin):
        if "bpf_test_run" not in frames:
            continue
        total += 1
        at = next((i for i, f in enumerate(frames) if f.startswith("bpf_prog_")), None)
        if at is None:
            by_program["(harness)"] += 1
            by_call[("(harness)", frames[0])] += 1
            continue
        program = program_name(frames[at])
        callee = "own code" if at == 0 else frames[at - 1]
        by_program[program] += 1
        by_call[(program, callee)] += 1
    if total == 0:
        sys.exit("no samples inside bpf_test_run: wrong --comm, or the load was not profiled")
    print(f"{total} samples inside bpf_test_run\n\nby program:")
    for program, n in by_program.most_common():
        print(f"  {100 * n / total:5.1f} %  {program}")
    print("\nby program and the function it called:")
    for (program, callee), n in by_call.most_common(30):
        print(f"  {100 * n / total:5.1f} %  {program}: {callee}")


if __name__ == "__main__":
    main()
