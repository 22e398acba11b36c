"""A short run of the decoder fuzz (`vpp bench fuzz` runs 100,000): no input ends as processing_error."""

from __future__ import annotations

from bench.fuzz import fuzz_decoders


def test_generated_payloads_never_end_as_processing_error() -> None:
    result = fuzz_decoders(1_500)
    assert result.failures == []
    # Hypothesis stops a little short of max_examples when it has exhausted small cases: most, not all.
    assert result.examples >= 1_000
    # The generator reaches the accepting paths and many rejection classes, not just one.
    assert result.outcomes["accepted"] > 0
    assert len([reason for reason, n in result.outcomes.items() if n and reason != "accepted"]) >= 6
