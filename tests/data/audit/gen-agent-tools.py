#!/usr/bin/env python3
"""Writes agent-tools.jsonl: a mixed, deterministic stream for policies/agent-tools.toml with
timestamps 90 s apart, so the rolling budgets (daily spend, recipients, hourly shell,
tokens) fill up and decisions depend on earlier ones. Run from this directory."""
import json, random
r = random.Random(5)
tools = ["noop", "search", "read_file", "write_file", "delete_file", "send_email", "http_post", "transfer", "shell"]
t0 = 1735722000  # 2025-01-01T09:00:00Z
out = []
for i in range(300):
    tool = r.choice(tools + ["transfer", "shell", "shell", "send_email"])
    a = {"tool": tool, "amount": 0.0, "recipients": 0, "file_count": 0, "write_mb": 0.0,
         "tokens": r.randrange(100, 20000), "external": r.random() < 0.2, "preview": r.random() < 0.3}
    if tool == "transfer":
        a["amount"] = float(r.choice([500, 2000, 9000, 15000, 30000]))
    if tool == "send_email":
        a["recipients"] = r.choice([1, 5, 40, 120, 300])
    if tool in ("read_file", "write_file", "delete_file"):
        a["file_count"] = r.choice([1, 3, 20, 200])
        a["write_mb"] = float(r.choice([0, 1, 50, 900])) if tool == "write_file" else 0.0
    s = {"session_risk": r.choice(["low", "low", "low", "medium", "high"]),
         "user_confirmed": r.random() < 0.4, "sandboxed": r.random() < 0.9,
         "protected_dir": r.random() < 0.1, "pii_detected": r.random() < 0.1,
         "injection_score": round(r.random() * 0.6, 3), "balance": 200000.0,
         "task_description": "task %d" % i}
    p = {"id": "at-%d" % i, "agent": "agent-%d" % r.randrange(3),
         "timestamp": t0 + 90 * i,
         "agent_attributes": {"role": r.choice(["admin", "finance", "finance", "engineer"]),
                              "trust": 0.9, "status": "active"},
         "action": a, "state": s}
    out.append(json.dumps(p, separators=(",", ":")))
open("agent-tools.jsonl", "w").write("\n".join(out) + "\n")
