"""Print the iteration counts the deq tests collected (deqff vs torchdeq, cold vs warm).

Counts are evaluations of f; deqff counts the check of the start, torchdeq's Broyden does not (+1 added).
"""

import test_deq_solvers


def pytest_terminal_summary(terminalreporter):
    lines = test_deq_solvers.ITERATION_REPORT
    if lines:
        terminalreporter.section("deqff.deq iteration counts")
        for line in lines:
            terminalreporter.write_line(line)
