"""Worked examples of fluxrl on problems of one's own (docs/your_problem.md); the test suite runs them."""
