"""The benchmark and soak harness: `vpp bench …`, `make bench`, and the fault tests that drive it.

It lives outside the product packages (`vpp`, `services`): the wheel and the Docker image leave it out, and
it runs from a source checkout. It may import the product; the product imports it only lazily, from the
`vpp bench` command group (services/cli/bench.py).
"""
