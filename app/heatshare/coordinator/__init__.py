"""The compute network's reference server: nodes, the job queue with leases, the ledger."""
