"""bacalhau-logs agent: log generator, query tool and archive compactor (`python -m agent`)."""
