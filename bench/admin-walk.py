#!/usr/bin/env python3
"""Walks the admin API's session list page by page and prints the time per page (p50, p99, max).

Usage: bench/admin-walk.py --admin http://127.0.0.1:8082 [--pages 500] [--limit 100] [--prefix P]

Each page is requested with the previous page's next_page_token, as a script paging through every session would;
the walk stops early when the list ends. Standard library only.
"""
import argparse
import json
import time
import urllib.parse
import urllib.request


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--admin", default="http://127.0.0.1:8082")
    p.add_argument("--pages", type=int, default=500)
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--prefix", default="")
    a = p.parse_args()
    token, times, seen = None, [], set()
    for _ in range(a.pages):
        query = {"limit": a.limit}
        if a.prefix:
            query["prefix"] = a.prefix
        if token:
            query["page_token"] = token
        url = f"{a.admin}/api/v1/sessions?{urllib.parse.urlencode(query)}"
        start = time.perf_counter()
        with urllib.request.urlopen(url, timeout=30) as response:
            page = json.load(response)
        times.append((time.perf_counter() - start) * 1000)
        seen.update(s["client_id"] for s in page["sessions"])
        token = page.get("next_page_token")
        if not token:
            break
    times.sort()
    print(f"pages={len(times)} sessions={len(seen)} p50={times[len(times) // 2]:.1f} ms "
          f"p99={times[min(len(times) - 1, int(len(times) * 0.99))]:.1f} ms max={times[-1]:.1f} ms")


if __name__ == "__main__":
    main()
