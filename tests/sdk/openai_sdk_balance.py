"""The official `openai` Python SDK reading balance and usage with nothing but the key: One API's
billing reads, through the SDK's own client (its auth, base URL and error handling).

Run by the Rust test `key_reads::the_key_reads_its_own_balance_and_usage`, which passes
BURNCLOUD_BASE_URL (ending in /v1) and BURNCLOUD_KEY. Prints what remains, as JSON.
"""

import json
import os

import openai

client = openai.OpenAI(base_url=os.environ["BURNCLOUD_BASE_URL"], api_key=os.environ["BURNCLOUD_KEY"], max_retries=0)
subscription = client.get("/dashboard/billing/subscription", cast_to=object)
usage = client.get(
    "/dashboard/billing/usage", cast_to=object, options={"params": {"start_date": "2026-12-01", "end_date": "2026-12-31"}}
)
assert subscription["object"] == "billing_subscription", subscription
print(json.dumps({"remaining": subscription["hard_limit_usd"] - usage["total_usage"] / 100}))
