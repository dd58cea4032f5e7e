"""End-to-end tests: real workers on real brokers, results in the test database."""
