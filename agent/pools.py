"""Value pools for the synthetic access-log generator.

Every string here is inserted into JSON verbatim (already quoted by `json.dumps` where the
generator builds its pools), so none of them may need escaping beyond that.
"""

BROWSER_AGENTS = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.4 Safari/605.1.15",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0.2478.51",
)

BOT_AGENTS = (
    "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
    "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0; +http://ahrefs.com/robot/)",
    "Mozilla/5.0 (compatible; YandexBot/3.0; +http://yandex.com/bots)",
)

SCRIPT_AGENTS = (
    "python-requests/2.31.0",
    "curl/8.5.0",
    "Go-http-client/1.1",
)

# Referrers are weighted: most requests carry none ("-"), then search engines and socials.
REFERRERS = (
    ("-", 50),
    ("https://www.google.com/", 20),
    ("https://www.bing.com/", 5),
    ("https://duckduckgo.com/", 4),
    ("https://www.facebook.com/", 6),
    ("https://t.co/", 4),
    ("https://www.reddit.com/", 4),
    ("https://news.ycombinator.com/", 2),
    ("https://www.linkedin.com/", 3),
    ("https://example.com/", 2),
)

SEARCH_TERMS = ("shoes", "red+dress", "laptop", "coffee+mug", "headphones", "desk+lamp", "tent")

DOWNLOAD_FILES = (
    ("/downloads/catalog-2025.pdf", 30),
    ("/downloads/price-list.xlsx", 15),
    ("/downloads/app-installer-3.2.1.dmg", 10),
    ("/downloads/app-installer-3.2.1.exe", 12),
    ("/downloads/user-manual.pdf", 20),
    ("/downloads/press-kit.zip", 5),
    ("/downloads/dataset-sample.csv", 8),
)

# Paths that 404: stale links and probes, concentrated as they are in real logs.
MISSING_PATHS = (
    ("/favicon.ico", 20),
    ("/apple-touch-icon.png", 10),
    ("/old-catalog.html", 8),
    ("/api/v0/products", 6),
    ("/images/banner-2019.jpg", 5),
    ("/.well-known/security.txt", 3),
    ("/blog/2018/summer-sale", 4),
)

# Paths that attackers probe; these are the ones answered 403.
PROTECTED_PATHS = (
    ("/admin", 20),
    ("/wp-login.php", 15),
    ("/.env", 10),
    ("/phpmyadmin/index.php", 6),
    ("/api/v1/users/export", 8),
    ("/server-status", 5),
)

# Relative traffic by UTC hour of day (a daily cycle that peaks in the afternoon).
HOURLY_WEIGHTS = (
    3, 2, 2, 2, 2, 3, 4, 6, 8, 9, 10, 11, 12, 12, 13, 13, 12, 11, 10, 9, 8, 7, 5, 4,
)  # fmt: skip
