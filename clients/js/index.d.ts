// Type declarations for @livecart/client (hand-written; the protocol is docs/protocol.md).

export const JSON_SUBPROTOCOL: 'livecart.v1.json';
export const MSGPACK_SUBPROTOCOL: 'livecart.v1.msgpack';

/** A wire message: an object with a string `type`; unknown fields must be ignored. */
export type Message = { type: string; [field: string]: any };

/** A room-log entry (docs/protocol.md § Room log). */
export interface Entry {
  id: string;
  kind: string;
  ts: number;
  ref?: string;
  user?: string;
  name?: string;
  role?: string;
  text?: string;
  [field: string]: any;
}

export interface Codec {
  subprotocol: string;
  binary: boolean;
  encode(message: object): string | Uint8Array;
  decode(data: string | ArrayBuffer | Uint8Array): any;
}

/** What `codec` accepts: "json" (default), a full Codec, or a msgpack library such as
 * `@msgpack/msgpack` (anything with encode/decode: used as `livecart.v1.msgpack`). */
export type CodecOption =
  | 'json'
  | Codec
  | { encode(value: unknown): Uint8Array; decode(bytes: Uint8Array): unknown };

/** The constructor of a WHATWG-style WebSocket (browser, React Native, Node 22+, `ws`). */
export type WebSocketConstructor = new (url: string, protocols?: string | string[]) => any;

export interface ViewerOptions {
  /** The engine's base URL (`https://live.example`, `ws://127.0.0.1:8000`) or `.../ws/{room}`. */
  url: string;
  room: string;
  /** A `lc1.` token; omit to join anonymously (if the room allows it). */
  token?: string | null;
  /** A stable random id (8-48 of A-Z a-z 0-9 _ -) for anonymous viewers. */
  device?: string | null;
  /** A share link's signed `ref`. */
  ref?: string | null;
  /** Default `globalThis.WebSocket`. */
  WebSocket?: WebSocketConstructor;
  codec?: CodecOption;
  /** Per request, and for the welcome. Default 10000. */
  requestTimeoutMs?: number;
  /** Full-jitter backoff: default base 250 ms, cap 15000 ms, unlimited attempts. */
  backoff?: { baseMs?: number; maxMs?: number; maxAttempts?: number | null };
  /** Reconnect and resume after a retryable close. Default true. */
  reconnect?: boolean;
  /** A random source in [0, 1) for the jitter (tests). Default Math.random. */
  random?: () => number;
}

export interface ViewerState {
  room: Record<string, any> | null;
  product: Record<string, any> | null;
  pinned: { id: string; user: string; name: string; role: string; text: string } | null;
  sales: Record<string, Sale>;
  drops: Record<string, Record<string, any>>;
  polls: Record<string, Record<string, any>>;
  auctions: Record<string, Record<string, any>>;
  stats: { online?: number; peak?: number; likes?: number; unique?: number };
  comments: Entry[];
  notices: Message[];
}

export interface Sale {
  id: string;
  available?: number;
  reserved?: number;
  sold?: number;
  units?: number;
  state?: 'scheduled' | 'live' | 'sold_out' | 'ended' | string;
  waiting?: number;
  [field: string]: any;
}

export interface CloseEvent {
  code: number | null;
  reason: string;
  willReconnect: boolean;
  error?: LivecartError;
}

/** The connection's state, as a page shows it: `connecting` (a first attempt), `live`,
 * `reconnecting` (every further attempt: after a drop, or after start()'s first attempt
 * failed), `closed`. */
export type Status = 'idle' | 'connecting' | 'live' | 'reconnecting' | 'closed';

export interface StatusEvent {
  status: Exclude<Status, 'idle'>;
  /** The close code that led here (reconnecting, closed). */
  code?: number | null;
  reason?: string;
  /** Why the viewer gave up (closed after a refusal such as `token_invalid`). */
  error?: LivecartError;
}

export interface ViewerEvents {
  status: StatusEvent;
  welcome: Message;
  tick: Message;
  entry: Entry;
  stock: Record<string, Sale>;
  drops: Record<string, Record<string, any>>;
  polls: Record<string, Record<string, any>>;
  state: ViewerState;
  notice: Message;
  gap: { expected: number; got: number };
  reconnect: { recovered: boolean | undefined; offset: string | null };
  close: CloseEvent;
  error: LivecartError | Error;
}

export class Emitter<Events extends Record<string, any> = Record<string, any>> {
  on<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): () => void;
  once<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): () => void;
  off<K extends keyof Events & string>(event: K, listener: (payload: Events[K]) => void): void;
  emit<K extends keyof Events & string>(event: K, payload: Events[K]): boolean;
}

export class LivecartError extends Error {
  constructor(
    code: string,
    message: string,
    options?: { retryable?: boolean; details?: Record<string, any>; status?: number },
  );
  readonly name: 'LivecartError';
  /** A stable error code: the engine's (docs/protocol.md § Errors) or the SDK's own:
   * `connect_failed`, `disconnected`, `timeout`, `not_connected`, `closed`, `bad_frame`. */
  code: string;
  /** The human-readable message (wording may change). */
  detail: string;
  retryable: boolean;
  details: Record<string, any>;
  /** The HTTP status, for errors of HTTP calls. */
  status?: number;
  /** `details.retry_after_ms`, when the engine said how long to wait. */
  readonly retryAfterMs: number | undefined;
  static fromWire(body: Record<string, any>, status?: number): LivecartError;
}

export interface GrabResult {
  status: 'reserved' | 'sold_out' | 'limit_reached' | 'not_started' | 'ended' | string;
  reservation?: string;
  replayed: boolean;
  [field: string]: any;
}

export interface ClaimResult {
  /** `tier_not_eligible`: a drop for some customer tiers only (`tiers`, the drop's). */
  status: 'claimed' | 'sold_out' | 'limit_reached' | 'not_started' | 'ended' | 'tier_not_eligible' | string;
  replayed: boolean;
  [field: string]: any;
}

export interface BidResult {
  auction: string;
  status: 'leading' | 'outbid';
  price: number;
  leader: boolean;
  min_bid: number;
  ends_at: number;
}

export class LivecartViewer extends Emitter<ViewerEvents> {
  constructor(options: ViewerOptions);
  readonly url: string;
  readonly roomId: string;
  token: string | null;
  readonly state: ViewerState;
  readonly welcome: Message | null;
  /** The last offset seen (welcome or tick): where a reconnect resumes. */
  readonly offset: string | null;
  readonly seq: number;
  readonly gaps: number;
  readonly duplicates: number;
  readonly reconnects: number;
  readonly sampledOut: number;
  readonly closeCode: number | null;
  readonly connected: boolean;
  /** `idle` until connect()/start(); `closed` after close() or a refusal. */
  readonly status: Status;
  /** The current WebSocket (null while disconnected). */
  readonly socket: any;

  connect(): Promise<Message>;
  /** Connect and stay connected (retrying a first failure that is retryable); never
   * rejects: resolves with the first welcome, or null after a refusal or close(). */
  start(): Promise<Message | null>;
  /** Drop the connection as a network failure would, then resume (after >= holdMs). */
  drop(options?: { holdMs?: number }): void;
  close(code?: number): Promise<void>;
  newId(): string;
  request(message: Message, options?: { id?: string; timeoutMs?: number }): Promise<Message>;
  send(message: Message): void;

  comment(text: string): Promise<Entry>;
  like(count?: number, options?: { confirm?: boolean }): Promise<void>;
  ping(): Promise<number>;
  click(product: string): Promise<void>;
  grab(sale: string, quantity?: number, options?: { id?: string }): Promise<GrabResult>;
  release(reservation: string): Promise<string>;
  waitlist(sale: string): Promise<number>;
  claim(drop: string, options?: { id?: string }): Promise<ClaimResult>;
  bid(auction: string, amount: number, options?: { max?: number; id?: string }): Promise<BidResult>;
  vote(poll: string, option: number): Promise<{ poll: string; option: number; changed: boolean }>;
  enter(
    giveaway: string,
    options?: { keyword?: string; fetch?: typeof fetch },
  ): Promise<{ giveaway: string; entered: boolean; new: boolean; entrants: number }>;
  waitFor<K extends keyof ViewerEvents & string>(
    event: K,
    where?: (payload: ViewerEvents[K]) => boolean,
    timeoutMs?: number,
  ): Promise<ViewerEvents[K]>;
}

export class Backoff {
  constructor(options?: { baseMs?: number; maxMs?: number; maxAttempts?: number | null; random?: () => number });
  attempt: number;
  /** The delay before the next attempt in ms, or null when attempts are used up. */
  next(): number | null;
  reset(): void;
}

export function shouldReconnect(code: number | null | undefined): boolean;
export function shedDelayMs(retryAfterMs: number, random?: () => number): number;
export function compareOffsets(a: string, b: string): number;
export function roomUrl(url: string, room: string): string;
export function httpBase(url: string): string;
export const jsonCodec: Codec;
export function resolveCodec(codec?: CodecOption): Codec;

/** Digits after the decimal point of a currency, as Intl knows them: USD 2, JPY 0. */
export function currencyDigits(currency: string): number;
/** Minor units as a person reads them: formatMoney(1500, 'JPY', 'en') === '¥1,500'. */
export function formatMoney(minor: number, currency: string, locale?: string | string[]): string;
/** Typed major units ("1,500", "12.5") -> minor units, or NaN if not an amount of the currency. */
export function toMinor(text: string, currency: string): number;
/** Typed major units -> minor units, or NaN: "24,50" and "24.50" USD are 2450, "1,500" JPY is
 * 1500, "1.234,50" EUR is 123450; "1500.5" JPY and "24.555" USD are NaN. */
export function parseMoney(text: string, currency: string, locale?: string | string[]): number;
/** Minor units -> the decimal text an amount input shows ("129.50", "1500"). */
export function toMajorText(minor: number, currency: string): string;
