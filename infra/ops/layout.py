"""Where query results live in a region's bucket, shared by the query jobs and the node role.

Bacalhau publishes each execution's result directory (stdout, stderr, exitCode) there, so an
answer larger than the 2 KiB the API returns can be read in full. It sits beside the archive
prefix, never inside it: archive readers must never mistake a result for logs.
"""

RESULTS_PREFIX = "ops-results/"
