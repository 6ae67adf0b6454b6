"""The agent's link to a coordinator: one HTTP session, retries, and an outbox for results."""
