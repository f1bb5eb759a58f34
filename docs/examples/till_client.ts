// A till talking to laned, the way docs/till-api.md recommends.
//
//   tsc -p docs/examples && node target/examples/till_client.js [BASE_URL]
//
// BASE_URL is the lane's address: the argument, else $LANED_URL, else
// http://127.0.0.1:7410 (laned's default). When the lane has an API token
// (it listens beyond loopback), put it in $LANED_API_TOKEN.
//
// It gets a transaction id, rings a sale, sends the very same request again
// (as a till does when an answer is lost) and shows that nothing changes,
// then sends a sale with a wrong amount and reads the `validation_failed`
// error. Exit code: 0 when all of that went as documented, 1 when anything
// did not, 3 when the lane is suspended (the cashier is told to stop).
//
// Node 18 or later (its global fetch); nothing from npm but the compiler.

export {}; // a module: its names do not clash with the DOM library's globals

// Node's `process`, typed here so that the file compiles without @types/node
// (with @types/node, plain `process` does the same).
interface NodeProcess {
  argv: string[];
  env: Record<string, string | undefined>;
  exitCode?: number;
}
const nodeProcess = (globalThis as unknown as { process: NodeProcess }).process;

const BASE_URL = (
  nodeProcess.argv[2] ?? nodeProcess.env.LANED_URL ?? "http://127.0.0.1:7410"
).replace(/\/+$/, "");
const API_TOKEN = nodeProcess.env.LANED_API_TOKEN; // undefined: the lane has no token
// A new sale may wait up to 5 s just after laned starts: give it 10 s or more.
const TIMEOUT_MS = 15_000;

/** What laned answers when it records a sale (201) or a repeat of it (200). */
interface Recorded {
  transaction_id: string;
  series: string;
  receipt_no: number;
  receipt: string;
  state: string; // pending, posted, stuck, resolved: as it is now
  lane_state: string; // online, offline, warning, suspended
  ceiling_remaining_seconds: number | null;
}

/** Every error laned answers: `code` is what software branches on,
 *  `message` is a sentence for a person. */
interface ErrorBody {
  code: string;
  message: string;
  details: { fields?: { field: string; message: string }[] } | null;
}

class TillApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: ErrorBody["details"];
  constructor(status: number, body: ErrorBody) {
    super(body.message);
    this.status = status;
    this.code = body.code;
    this.details = body.details;
  }
}

/** `503 lane_suspended`: the lane has been offline past its sync ceiling and
 *  takes no new sale until it reaches head office again. */
class LaneSuspended extends TillApiError {}

interface Answer {
  status: number;
  body: any; // JSON: Recorded, ErrorBody, ...
  retryAfter: number | null;
}

/** One request. Throws (TypeError "fetch failed", a TimeoutError) when
 *  there is no answer at all. */
async function call(method: string, path: string, body?: unknown): Promise<Answer> {
  const headers: Record<string, string> = {};
  if (body !== undefined) headers["Content-Type"] = "application/json"; // required on writes
  if (API_TOKEN) headers["Authorization"] = `Bearer ${API_TOKEN}`;
  const response = await fetch(BASE_URL + path, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  const retryAfter = response.headers.get("Retry-After");
  return {
    status: response.status,
    body: await response.json(), // errors are JSON too
    retryAfter: retryAfter === null ? null : Number(retryAfter),
  };
}

/** An id for the cart, from laned (nothing is stored yet). A till may just
 *  as well mint its own v4 UUID (crypto.randomUUID() on Node 19 and later). */
async function newTransactionId(): Promise<string> {
  const { status, body } = await call("POST", "/v1/transactions");
  if (status !== 200) throw new TillApiError(status, body);
  return body.transaction_id;
}

const sleep = (seconds: number) => new Promise((done) => setTimeout(done, seconds * 1000));

/** PUTs the sale under its id until laned answers 2xx. A lost answer
 *  (timeout, reset, 503 unavailable) is retried with the SAME id and the
 *  SAME sale: laned answers a repeat with the original receipt and never
 *  records the sale twice. Resolves to 201 the first time, 200 for a repeat. */
async function recordSale(
  transactionId: string,
  sale: object,
  attempts = 5,
): Promise<{ status: number; recorded: Recorded }> {
  for (let attempt = 1; attempt <= attempts; attempt++) {
    let answer: Answer;
    try {
      answer = await call("PUT", `/v1/sales/${transactionId}`, sale);
    } catch (error) {
      // No answer: the sale may or may not be stored.
      console.log(`   no answer (${error}); sending the same sale again`);
      await sleep(attempt);
      continue;
    }
    const { status, body, retryAfter } = answer;
    if (status === 200 || status === 201) return { status, recorded: body };
    // lane_suspended is the one 503 never retried on its own.
    if (body.code === "lane_suspended") throw new LaneSuspended(status, body);
    if (status === 408 || status === 500 || status === 503) {
      // request_timeout, internal, unavailable
      console.log(`   ${status} ${body.code}; sending the same sale again`);
      await sleep(retryAfter ?? attempt);
      continue;
    }
    throw new TillApiError(status, body); // any other 4xx: the request is wrong
  }
  // A real till keeps the sale and keeps trying; never under a new id.
  throw new Error(`no answer from laned after ${attempts} attempts: keep the sale, try later`);
}

/** docs/till-api.md's example: 2 x Milk 1L at 125.00 KES, paid 300.00 cash.
 *  Amounts are integers in minor units; quantities are strings. */
function exampleSale() {
  const now = new Date();
  const pad = (n: number) => String(n).padStart(2, "0");
  return {
    kind: "sale",
    references: null,
    business_date: `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}`,
    occurred_at: now.toISOString(), // RFC 3339, in UTC
    currency: "KES",
    cashier: "E042",
    lines: [
      { sku: "4006381333931", name: "Milk 1L", quantity: "2",
        unit_price: 12500, discount: 0, tax_code: "A", amount: 25000 },
    ],
    // A payment may also carry `payment_id`, the till's own UUID for it.
    payments: [{ method: "cash", amount: 30000 }],
    total: 25000,
    change: 5000,
    till: { invoice_no: "000123", register: "R3" },
    extra: {},
  };
}

/** What a till does with `lane_suspended`: stop ringing sales and show
 *  laned's sentence, which says why and what brings the lane back. */
function tellCashierToStopSelling(error: LaneSuspended) {
  console.log(`!! ${error.code}: STOP SELLING on this till.`);
  console.log(`!! ${error.message}`);
}

function check(condition: boolean, what: string): asserts condition {
  if (!condition) throw new Error(what);
}

async function main(): Promise<number> {
  console.log(`laned at ${BASE_URL}`);

  // 1. A cart starts: get its transaction id.
  const transactionId = await newTransactionId();
  console.log(`1. POST /v1/transactions -> transaction id ${transactionId}`);

  // 2. The sale is finished: record it, then print the receipt.
  const sale = exampleSale();
  const { status, recorded: first } = await recordSale(transactionId, sale);
  console.log(
    `2. PUT /v1/sales/${transactionId} -> ${status}: receipt ${first.receipt} ` +
      `(number ${first.receipt_no}, ${first.state}, lane ${first.lane_state})`,
  );

  // 3. The till never saw that answer (say): it sends the same request
  //    again. Same id, same receipt; `state` and `lane_state` are as now.
  const again = await recordSale(transactionId, sale);
  const repeat = again.recorded;
  console.log(
    `3. the same PUT again -> ${again.status}: receipt ${repeat.receipt} ` +
      `(number ${repeat.receipt_no}, ${repeat.state})`,
  );
  check(again.status === 200, `a repeat is answered 200, not ${again.status}`);
  for (const field of ["transaction_id", "series", "receipt_no", "receipt"] as const) {
    check(
      repeat[field] === first[field],
      `the repeat's ${field} is ${repeat[field]}, not ${first[field]}`,
    );
  }
  console.log("   same transaction id, same receipt: a repeat, not a second sale");

  // 4. A sale with a wrong line amount (2 x 12500 is 25000, not 25001):
  //    refused with 422 validation_failed, and nothing is stored.
  const wrong = exampleSale();
  wrong.lines[0].amount = wrong.total = 25001;
  wrong.payments[0].amount = 30001;
  let refused: TillApiError | undefined;
  try {
    await recordSale(await newTransactionId(), wrong);
  } catch (error) {
    if (!(error instanceof TillApiError) || error.code !== "validation_failed") throw error;
    refused = error;
  }
  check(refused !== undefined, "a sale with a wrong amount was accepted");
  console.log(`4. PUT a sale with a wrong amount -> ${refused.status} ${refused.code}: ${refused.message}`);
  for (const problem of refused.details?.fields ?? []) {
    console.log(`   ${problem.field}: ${problem.message}`); // every problem, field by field
  }

  console.log(`OK: one sale recorded, receipt ${first.receipt}`);
  return 0;
}

main().then(
  (code) => {
    nodeProcess.exitCode = code;
  },
  (error: unknown) => {
    if (error instanceof LaneSuspended) {
      tellCashierToStopSelling(error);
      nodeProcess.exitCode = 3;
    } else if (error instanceof TillApiError) {
      console.error(`FAILED: ${error.status} ${error.code}: ${error.message}`);
      nodeProcess.exitCode = 1;
    } else {
      console.error(`FAILED: ${error instanceof Error ? error.message : error}`);
      nodeProcess.exitCode = 1;
    }
  },
);
