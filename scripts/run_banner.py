"""What `make run` prints once the web server answers: where everything is and how to chat."""

from __future__ import annotations

from collections.abc import Mapping

from scripts.run_children import Console
from scripts.run_environment import Ports
from scripts.run_record import port_is_free


def print_banner(ports: Ports, env: Mapping[str, str], console: Console) -> None:
    web = f"http://127.0.0.1:{ports.web}"
    lines = [
        "Encargo is running:",
        f"  simulator     {web}/simulator",
        f"  companies     {env.get('TENANT_SLUG') or 'demo'} (number {env.get('META_PHONE_NUMBER_ID', '-')}) and"
        f" {env.get('DEMO2_TENANT_SLUG') or 'cuscatlan'} (number {env.get('DEMO2_PHONE_NUMBER_ID', '-')}):"
        " pick one in the simulator",
        f"  console       {web}/console      (agent {env.get('CONSOLE_DEMO_EMAIL', 'soporte@demo.encargo')},"
        " password CONSOLE_DEMO_PASSWORD in .run/env)",
        f"  operator      {web}/operator     (operator {env.get('OPERATOR_DEMO_EMAIL', 'ops@demo.encargo')},"
        " password OPERATOR_DEMO_PASSWORD in .run/env)",
        f"  health        {web}/healthz      readiness {web}/readyz",
        f"  sandbox core  http://127.0.0.1:{ports.core}"
        + ("   (send Authorization: Bearer $CORE_API_KEY, or $DEMO2_CORE_API_KEY for the second company,"
           " see .run/env)" if env.get("CORE_API_KEY") else ""),
        f"  redis         {env.get('REDIS_URL', '')}",
        f"  postgresql    {env.get('DATABASE_URL', '')}",
        "Chat from another terminal as a customer:",
        "  make chat                      (FROM=+50370000001 by default)",
        "  .venv/bin/python -m scripts.run_all --exec .venv/bin/python scripts/chat.py --from +50370000001",
        "Ctrl-C stops everything.",
    ]
    if port_is_free(ports.core):
        lines.insert(7, f"  (nothing listens on port {ports.core} yet: is the sandbox core starting?)")
    console.line("run", "\n".join(lines))
