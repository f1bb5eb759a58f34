#!/usr/bin/env python3
"""A till talking to laned, the way docs/till-api.md recommends.

    python3 till_client.py [BASE_URL]

BASE_URL is the lane's address: the argument, else $LANED_URL, else
http://127.0.0.1:7410 (laned's default). When the lane has an API token
(it listens beyond loopback), put it in $LANED_API_TOKEN.

It gets a transaction id, rings a sale, sends the very same request again
(as a till does when an answer is lost) and shows that nothing changes,
then sends a sale with a wrong amount and reads the `validation_failed`
error. Exit code: 0 when all of that went as documented, 1 when anything
did not, 3 when the lane is suspended (the cashier is told to stop).

Python 3 standard library only.
"""

import datetime
import http.client
import json
import os
import sys
import time
import urllib.error
import urllib.request

DEFAULT_URL = "http://127.0.0.1:7410"
BASE_URL = sys.argv[1] if len(sys.argv) > 1 else os.environ.get("LANED_URL", DEFAULT_URL)
BASE_URL = BASE_URL.rstrip("/")
API_TOKEN = os.environ.get("LANED_API_TOKEN")  # None: the lane has no token

# laned is on this machine: never go through an HTTP proxy named in the
# environment (http_proxy), which urllib would otherwise use.
HTTP = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# A new sale may wait up to 5 s just after laned starts: give it 10 s or more.
TIMEOUT_SECONDS = 15


class TillApiError(Exception):
    """laned answered with an error: `code` is what software branches on,
    `message` is a sentence for a person."""

    def __init__(self, status, body):
        self.status = status
        self.code = body.get("code")
        self.message = body.get("message")
        self.details = body.get("details")
        super().__init__(f"{status} {self.code}: {self.message}")


class LaneSuspended(TillApiError):
    """`503 lane_suspended`: the lane has been offline past its sync ceiling
    and takes no new sale until it reaches head office again."""


def call(method, path, body=None):
    """One request; returns (status, JSON answer, Retry-After seconds).
    Raises OSError (URLError, TimeoutError, ConnectionResetError, ...) or
    http.client.HTTPException when there is no (complete) answer."""
    data = None if body is None else json.dumps(body).encode("utf-8")
    request = urllib.request.Request(BASE_URL + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")  # required on writes
    if API_TOKEN:
        request.add_header("Authorization", f"Bearer {API_TOKEN}")
    try:
        with HTTP.open(request, timeout=TIMEOUT_SECONDS) as answer:
            return answer.status, json.load(answer), None
    except urllib.error.HTTPError as error:  # a 4xx or 5xx answer: JSON too
        with error:
            retry_after = error.headers.get("Retry-After")
            return error.code, json.load(error), int(retry_after) if retry_after else None


def new_transaction_id():
    """An id for the cart, from laned (nothing is stored yet). A till may
    just as well mint its own v4 UUID: str(uuid.uuid4())."""
    status, body, _ = call("POST", "/v1/transactions")
    if status != 200:
        raise TillApiError(status, body)
    return body["transaction_id"]


def record_sale(transaction_id, sale, attempts=5):
    """PUT the sale under its id until laned answers 2xx. A lost answer
    (timeout, reset, 503 unavailable) is retried with the SAME id and the
    SAME sale: laned answers a repeat with the original receipt and never
    records the sale twice. Returns (status, answer): 201 the first time,
    200 for a repeat."""
    for attempt in range(1, attempts + 1):
        try:
            status, body, retry_after = call("PUT", f"/v1/sales/{transaction_id}", sale)
        except (OSError, http.client.HTTPException) as error:
            # No answer: the sale may or may not be stored.
            print(f"   no answer ({error}); sending the same sale again")
            time.sleep(attempt)
            continue
        if status in (200, 201):
            return status, body
        if body.get("code") == "lane_suspended":  # never retried on its own
            raise LaneSuspended(status, body)
        if status in (408, 500, 503):  # request_timeout, internal, unavailable
            print(f"   {status} {body.get('code')}; sending the same sale again")
            time.sleep(retry_after or attempt)
            continue
        raise TillApiError(status, body)  # any other 4xx: the request is wrong
    # A real till keeps the sale and keeps trying; never under a new id.
    raise RuntimeError(f"no answer from laned after {attempts} attempts: keep the sale, try later")


def example_sale():
    """docs/till-api.md's example: 2 x Milk 1L at 125.00 KES, paid 300.00
    cash. Amounts are integers in minor units; quantities are strings."""
    now = datetime.datetime.now().astimezone()
    return {
        "kind": "sale", "references": None,
        "business_date": now.date().isoformat(),
        "occurred_at": now.isoformat(timespec="seconds"),
        "currency": "KES", "cashier": "E042",
        "lines": [{"sku": "4006381333931", "name": "Milk 1L", "quantity": "2",
                   "unit_price": 12500, "discount": 0, "tax_code": "A", "amount": 25000}],
        # A payment may also carry "payment_id", the till's own UUID for it.
        "payments": [{"method": "cash", "amount": 30000}],
        "total": 25000, "change": 5000,
        "till": {"invoice_no": "000123", "register": "R3"}, "extra": {},
    }


def tell_cashier_to_stop_selling(error):
    """What a till does with `lane_suspended`: stop ringing sales and show
    laned's sentence, which says why and what brings the lane back."""
    print(f"!! {error.code}: STOP SELLING on this till.")
    print(f"!! {error.message}")


def check(condition, what):
    if not condition:
        raise AssertionError(what)


def main():
    print(f"laned at {BASE_URL}")

    # 1. A cart starts: get its transaction id.
    transaction_id = new_transaction_id()
    print(f"1. POST /v1/transactions -> transaction id {transaction_id}")

    # 2. The sale is finished: record it, then print the receipt.
    sale = example_sale()
    status, first = record_sale(transaction_id, sale)
    print(f"2. PUT /v1/sales/{transaction_id} -> {status}: receipt {first['receipt']} "
          f"(number {first['receipt_no']}, {first['state']}, lane {first['lane_state']})")

    # 3. The till never saw that answer (say): it sends the same request
    #    again. Same id, same receipt; `state` and `lane_state` are as now.
    status, repeat = record_sale(transaction_id, sale)
    print(f"3. the same PUT again -> {status}: receipt {repeat['receipt']} "
          f"(number {repeat['receipt_no']}, {repeat['state']})")
    check(status == 200, f"a repeat is answered 200, not {status}")
    for field in ("transaction_id", "series", "receipt_no", "receipt"):
        check(repeat[field] == first[field],
              f"the repeat's {field} is {repeat[field]!r}, not {first[field]!r}")
    print("   same transaction id, same receipt: a repeat, not a second sale")

    # 4. A sale with a wrong line amount (2 x 12500 is 25000, not 25001):
    #    refused with 422 validation_failed, and nothing is stored.
    wrong = example_sale()
    wrong["lines"][0]["amount"] = wrong["total"] = 25001
    wrong["payments"][0]["amount"] = 30001
    try:
        record_sale(new_transaction_id(), wrong)
    except TillApiError as error:
        if error.code != "validation_failed":
            raise
        print(f"4. PUT a sale with a wrong amount -> {error.status} {error.code}: {error.message}")
        for problem in error.details["fields"]:  # every problem, field by field
            print(f"   {problem['field']}: {problem['message']}")
    else:
        raise AssertionError("a sale with a wrong amount was accepted")

    print(f"OK: one sale recorded, receipt {first['receipt']}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except LaneSuspended as error:
        tell_cashier_to_stop_selling(error)
        sys.exit(3)
    except Exception as error:  # anything not as documented
        print(f"FAILED: {type(error).__name__}: {error}", file=sys.stderr)
        sys.exit(1)
