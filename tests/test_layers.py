"""The web process does not load the bot: what a gunicorn worker imports while it serves every page it has.

The import contracts (`lint-imports`, pyproject `[tool.importlinter]`) check the code statically; this runs a
web process for real, in a fresh interpreter, and looks at what it actually loaded after a webhook, the
console's login page, the simulator and health.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.harness import text_payload

ROOT = Path(__file__).resolve().parent.parent

SERVE_EVERYTHING = """
import json, sys
from channels import meta_webhook
from config import Settings
from web.app import create_app

settings = Settings.from_env()
app = create_app(settings)
client = app.test_client()
body = sys.argv[1].encode()
answers = [
    client.post("/webhooks/whatsapp", data=body, headers={
        "Content-Type": "application/json", "X-Hub-Signature-256": meta_webhook.sign(settings.meta_app_secret, body)}),
    client.get("/console/login"),
    client.get("/simulator"),
    client.get("/readyz"),
]
print(json.dumps({"status": [a.status_code for a in answers],
                  "loaded": sorted({name.split(".")[0] for name in sys.modules})}))
"""


def test_the_web_process_serves_everything_without_loading_the_bot(base_env: dict[str, str]) -> None:
    env = {**base_env, "SIMULATOR_ENABLED": "true", "PATH": "/usr/bin:/bin"}
    # tests.harness is not imported in the child: it loads the worker (it runs jobs), which would hide the answer.
    body = json.dumps(text_payload("50370000001", "Hola", "wamid.LAYERS1"))
    done = subprocess.run([sys.executable, "-c", SERVE_EVERYTHING, body], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["status"] == [200, 200, 200, 200]
    loaded = set(seen["loaded"])
    assert {"web", "console", "runtime", "storage"} <= loaded  # it did serve
    assert not loaded & {"chatbot", "worker", "spacy", "thinc"}, sorted(loaded & {"chatbot", "worker", "spacy"})
