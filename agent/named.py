"""Built-in queries for `query --named`, each against the `logs` view."""

from enum import StrEnum


class Named(StrEnum):
    """The closed set of built-in query names."""

    ERROR_ANALYSIS = "error-analysis"
    CONTENT_ANALYSIS = "content-analysis"
    PEAK_TRAFFIC = "peak-traffic"
    SECURITY_ANALYSIS = "security-analysis"
    TOP_REFERRING_SITES = "top-referring-sites"
    UNAUTHORIZED_IPS = "unauthorized-ips"
    THROTTLED_IPS = "throttled-ips"
    DATA_VOLUME = "data-volume"
    TOP_USER_AGENTS = "top-user-agents"


def _top_ips_with(status: int) -> str:
    return (
        f"SELECT remote_addr, count(*) AS requests FROM logs WHERE status = {status} "
        "GROUP BY remote_addr ORDER BY requests DESC, remote_addr LIMIT $limit"
    )


# `$limit` and `$threshold` are bound as parameters, never formatted into the text.
NAMED_SQL: dict[Named, str] = {
    Named.ERROR_ANALYSIS: (
        "SELECT request, count(*) AS requests FROM logs WHERE status = 404 "
        "GROUP BY request ORDER BY requests DESC, request LIMIT $limit"
    ),
    # A file is a path (query string dropped) ending in an extension, served in full.
    Named.CONTENT_ANALYSIS: (
        "SELECT split_part(request, '?', 1) AS file, count(*) AS downloads, "
        "sum(body_bytes_sent) AS bytes FROM logs "
        "WHERE status = 200 AND http_method = 'GET' "
        "AND regexp_matches(split_part(request, '?', 1), '/[^/]+\\.[A-Za-z0-9]{2,5}$') "
        "GROUP BY file ORDER BY downloads DESC, file LIMIT $limit"
    ),
    Named.PEAK_TRAFFIC: (
        "SELECT date_trunc('hour', time_local) AS hour, count(*) AS requests FROM logs "
        "GROUP BY hour ORDER BY hour"
    ),
    Named.SECURITY_ANALYSIS: (
        "SELECT remote_addr, count(*) AS requests, "
        "count(*) FILTER (WHERE status IN (401, 403)) AS denied, "
        "count(*) FILTER (WHERE status = 404) AS not_found, "
        "count(*) FILTER (WHERE status = 429) AS throttled FROM logs "
        "GROUP BY remote_addr HAVING count(*) > $threshold "
        "ORDER BY requests DESC, remote_addr"
    ),
    Named.TOP_REFERRING_SITES: (
        "SELECT http_referer AS referrer, count(*) AS requests FROM logs "
        "WHERE http_referer NOT IN ('', '-') "
        "GROUP BY referrer ORDER BY requests DESC, referrer LIMIT $limit"
    ),
    Named.UNAUTHORIZED_IPS: _top_ips_with(403),
    Named.THROTTLED_IPS: _top_ips_with(429),
    Named.DATA_VOLUME: (
        "SELECT count(*) AS requests, coalesce(sum(body_bytes_sent), 0) AS total_bytes, "
        "min(time_local) AS first_event, max(time_local) AS last_event FROM logs"
    ),
    Named.TOP_USER_AGENTS: (
        "SELECT http_user_agent AS user_agent, count(*) AS requests FROM logs "
        "GROUP BY user_agent ORDER BY requests DESC, user_agent LIMIT $limit"
    ),
}


def named_parameters(sql: str, limit: int, threshold: int) -> dict[str, int]:
    """The parameters a named query's text refers to."""
    values = {"limit": limit, "threshold": threshold}
    return {name: value for name, value in values.items() if f"${name}" in sql}
