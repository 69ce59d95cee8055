// WHIP (RFC 9725) and WHEP signalling for the player and publish pages, plus what both need
// to keep a session alive: a health watch and a retry backoff.

/** The server refused the offer; `status` tells "not live" (404) or "busy" (409) from the rest. */
export class SignallingError extends Error {
  constructor(message, status) {
    super(message);
    this.name = 'SignallingError';
    this.status = status;
  }
}

function bearer(token) {
  return token ? { Authorization: `Bearer ${token}` } : {};
}

async function refusalText(response) {
  const text = (await response.text()).trim();
  let detail = text;
  try {
    detail = JSON.parse(text).error ?? text; // hub refusals are {"error": ...}, others plain text
  } catch {
    // plain text it is
  }
  return `${response.status} ${response.statusText}${detail ? `: ${detail.slice(0, 300)}` : ''}`;
}

/**
 * POSTs the offer at once, without waiting for ICE gathering: the server is ICE-lite, its
 * answer carries its candidates, and it learns ours from the checks we send it.
 * Returns the session resource (absolute URL, for hangup) and the answer SDP.
 */
export async function negotiate(pc, url, token) {
  await pc.setLocalDescription(await pc.createOffer());
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'Content-Type': 'application/sdp', ...bearer(token) },
    body: pc.localDescription.sdp,
    cache: 'no-store',
  });
  if (response.status !== 201) {
    throw new SignallingError(await refusalText(response), response.status);
  }
  const answer = await response.text();
  const header = response.headers.get('Location');
  const location = header ? new URL(header, response.url).href : null;
  try {
    await pc.setRemoteDescription({ type: 'answer', sdp: answer });
  } catch (error) {
    hangup(location, token); // the server made a session we cannot use
    throw error;
  }
  return { location, answer };
}

/**
 * Ends the session resource. Best effort and never throws: the server also ends sessions
 * whose ICE consent lapses. `keepalive` lets the request outlive the page on `pagehide`.
 */
export async function hangup(location, token) {
  if (!location) return;
  try {
    await fetch(location, { method: 'DELETE', headers: bearer(token), keepalive: true });
  } catch {
    // unreachable server: its consent timeout ends the session
  }
}

export function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Milliseconds before retry number `attempt` (0-based): 1, 2, 4, 8, then 15 s. */
export function backoff(attempt) {
  return Math.min(1000 * 2 ** attempt, 15000);
}

/**
 * The stream path of a page URL, still percent-encoded as URLs need it: `/live/cam1/` and
 * `/live/cam1/publish` (with `suffix` '/publish') both give `live/cam1`. Leading slashes go,
 * so the path can never turn a link into `//other.host/`.
 */
export function streamPath(pathname, suffix = '') {
  const trimmed = suffix && pathname.endsWith(suffix) ? pathname.slice(0, -suffix.length) : pathname;
  return trimmed.replace(/^\/+|\/+$/g, '');
}

/** The path for people to read (never parsed as HTML: callers set it with textContent). */
export function displayPath(path) {
  try {
    return decodeURIComponent(path);
  } catch {
    return path;
  }
}

async function mediaBytes(pc) {
  let total = 0;
  (await pc.getStats()).forEach((s) => {
    if (s.type === 'inbound-rtp') total += s.bytesReceived ?? 0;
    else if (s.type === 'outbound-rtp') total += s.bytesSent ?? 0;
  });
  return total;
}

/**
 * Resolves once the session is over, with {connected, reason}: it did not connect within
 * `connectTimeout` ms, the server closed DTLS (the stream ended), the connection failed or stayed
 * disconnected, or no media moved for `stallTimeout` ms. Polling one loop keeps every cause in
 * one place; `onConnected` runs once when media can flow.
 */
export async function watch(pc, { connectTimeout, stallTimeout = 10000, onConnected = () => {} }) {
  const started = performance.now();
  let connected = false;
  let bytes = -1;
  let progress = started;
  let disconnectedSince = null;
  for (;;) {
    await sleep(250);
    const now = performance.now();
    const state = pc.connectionState;
    const dtls = pc.getTransceivers().find((t) => t.receiver.transport)?.receiver.transport;
    if (state === 'closed') return { connected, reason: 'closed' };
    if (!connected) {
      if (state === 'connected') {
        connected = true;
        progress = now;
        onConnected();
      } else if (state === 'failed' || now - started > connectTimeout) {
        return { connected, reason: `WebRTC did not connect within ${connectTimeout / 1000} s` };
      }
      continue;
    }
    if (dtls?.state === 'closed') return { connected, reason: 'the server ended the session' };
    if (state === 'failed') return { connected, reason: 'the connection failed' };
    if (state === 'disconnected') {
      disconnectedSince ??= now;
      if (now - disconnectedSince > 3000) return { connected, reason: 'the connection was lost' };
    } else {
      disconnectedSince = null;
    }
    const moved = await mediaBytes(pc);
    if (moved !== bytes) {
      bytes = moved;
      progress = now;
    } else if (now - progress > stallTimeout) {
      return { connected, reason: `no media for ${stallTimeout / 1000} s` };
    }
  }
}
