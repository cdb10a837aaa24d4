"""A spool of fetched pages that are paid for but not yet in DuckDB.

A creator's pages are written here the moment its scan completes, before the DuckDB write, and
removed once the DuckDB transaction commits. If the write fails (the file is locked by a reader,
the process is killed), the next run loads the pages from here instead of paying for them again.
Files are written to a temporary name and renamed, so a spool file is always whole.
"""

from __future__ import annotations

import json
import os
from datetime import date, datetime
from pathlib import Path

from pgy_pipeline.api.client import Page


class Spool:
    """Whole-partition page files under ``root/<snapshot_date>/<creator_id>.json``."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def _path(self, creator_id: str, snapshot_date: date) -> Path:
        # creator ids are validated 24-hex strings before they get here, so they are safe file names
        return self.root / snapshot_date.isoformat() / f"{creator_id}.json"

    def save(self, creator_id: str, snapshot_date: date, pages: list[Page]) -> None:
        path = self._path(creator_id, snapshot_date)
        path.parent.mkdir(parents=True, exist_ok=True)
        record = [
            {
                "page_number": p.page_number,
                "params": p.params,
                "fetched_at": p.fetched_at.isoformat(),
                "attempts": p.attempts,
                "code": p.code,
                "total": p.total,
                "body_text": p.body_text,
                "scan": p.scan,
                "scan_window_from": p.scan_window_from.isoformat() if p.scan_window_from else None,
            }
            for p in pages
        ]
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(record, f, ensure_ascii=False)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def load(self, creator_id: str, snapshot_date: date) -> list[Page] | None:
        path = self._path(creator_id, snapshot_date)
        if not path.exists():
            return None
        record = json.loads(path.read_text(encoding="utf-8"))
        pages = []
        for r in record:
            body = json.loads(r["body_text"])
            pages.append(
                Page(
                    creator_id=creator_id,
                    page_number=r["page_number"],
                    params=r["params"],
                    fetched_at=datetime.fromisoformat(r["fetched_at"]),
                    attempts=r["attempts"],
                    code=r["code"],
                    total=r["total"],
                    items=(body.get("data") or {}).get("list") or [],
                    body_text=r["body_text"],
                    # spool files from before window scans have neither key: those scans were full
                    scan=r.get("scan", "full"),
                    scan_window_from=date.fromisoformat(since)
                    if (since := r.get("scan_window_from"))
                    else None,
                )
            )
        return pages

    def discard(self, creator_id: str, snapshot_date: date) -> None:
        self._path(creator_id, snapshot_date).unlink(missing_ok=True)
