// The streamhive rooms SDK: join a multi-party WebRTC room (docs/rooms.md) from a browser.
//
// One WebSocket carries the signaling; media rides two PeerConnections, as LiveKit's do: the
// publish one holds our `sendonly` transceivers, the subscribe one a `recvonly` transceiver per
// remote track. On both we make every offer and the server answers, so the two sides never offer
// at once and each offer's `tracks` list says which transceiver (mid) carries which track.
//
//   import { Room } from '/sdk/streamhive.js';
//   const room = new Room({ url: '/rooms/standup/ws', name: 'Alice' });
//   room.on('track', ({ participant, track, stream }) => { ... });
//   await room.join();
//   await room.publish(await navigator.mediaDevices.getUserMedia({ video: true, audio: true }));

/** @typedef {'camera' | 'microphone' | 'screen' | 'screen_audio'} Source */

/**
 * A published track as the server describes it (`track_published`, `joined`).
 * @typedef {object} TrackInfo
 * @property {string} id e.g. `alice/camera`
 * @property {'audio' | 'video'} kind
 * @property {Source} source
 * @property {boolean} muted
 * @property {number} [width]
 * @property {number} [height]
 * @property {boolean} [simulcast]
 */

/**
 * Someone else in the room.
 * @typedef {object} Participant
 * @property {string} identity
 * @property {string} name
 * @property {Map<string, TrackInfo>} tracks by track id
 */

/**
 * One of our own published tracks.
 * @typedef {object} LocalTrack
 * @property {string} id the server's id for it (`{identity}/{source}`)
 * @property {Source} source
 * @property {'audio' | 'video'} kind
 * @property {MediaStreamTrack} mediaTrack
 * @property {RTCRtpTransceiver} transceiver
 * @property {boolean} muted
 * @property {boolean} negotiated whether an answered offer has listed it
 * @property {boolean} captured whether the SDK captured it (and so stops it when unpublished)
 */

/**
 * @typedef {object} RoomOptions
 * @property {string} url the signaling WebSocket: `/rooms/{room}/ws` (same origin) or `ws(s)://…`
 * @property {string} [token] a room token (docs/rooms.md, Tokens)
 * @property {string} [identity] who we are, in open rooms (a token's `sub` decides otherwise)
 * @property {string} [name] the name others see
 * @property {RTCIceServer[]} [iceServers] else the server's `ice_servers`
 * @property {boolean} [autoSubscribe] receive every track the others publish (default true)
 */

/**
 * The `joined` message.
 * @typedef {object} Joined
 * @property {string} room
 * @property {string} identity
 * @property {string} name
 * @property {{identity: string, name: string, tracks: TrackInfo[]}[]} participants
 * @property {Record<string, unknown>} grants
 * @property {RTCIceServer[]} ice_servers
 */

/** How long the server has to answer an offer; a refused offer gets an `error`, not an answer. */
const ANSWER_TIMEOUT = 10000;
/** How long `join()` waits for `joined` (the server's own limit is `rooms.join_timeout`). */
const JOIN_TIMEOUT = 15000;
/** Keeps idle proxies from closing the WebSocket. */
const PING_INTERVAL = 20000;
/** How long `leave()` waits for the server to close the WebSocket before closing it itself. */
const LEAVE_TIMEOUT = 2000;

/** The camera's simulcast layers, lowest first; the server knows them by rid. */
const SIMULCAST_LAYERS = [
  { rid: 'q', scaleResolutionDownBy: 4, maxBitrate: 150000 },
  { rid: 'h', scaleResolutionDownBy: 2, maxBitrate: 500000 },
  { rid: 'f', scaleResolutionDownBy: 1, maxBitrate: 1500000 },
];
/** A layer smaller than this (its longer side, in pixels) is not worth its bits: it is dropped. */
const MIN_LAYER_SIZE = 160;
/** Not codecs but helpers (retransmission, redundancy, FEC): kept, after the codecs. */
const HELPERS = new Set(['video/rtx', 'video/red', 'video/ulpfec', 'video/flexfec-03']);

/**
 * The simulcast encodings for a camera of this size, lowest layer first: the layers whose longer
 * side would be under 160 px are left out (a 480-wide camera sends two, a 240-wide one only one),
 * as LiveKit does. An unknown size gets all three. Returns null when one layer is all that is left:
 * that is a plain send, not simulcast.
 * @param {number} [width]
 * @param {number} [height]
 * @returns {RTCRtpEncodingParameters[] | null}
 */
export function simulcastEncodings(width, height) {
  const size = Math.max(width || 0, height || 0) || Infinity;
  const layers = SIMULCAST_LAYERS.filter((l) => size / l.scaleResolutionDownBy >= MIN_LAYER_SIZE);
  return layers.length > 1 ? layers.map((l) => ({ ...l })) : null;
}

/**
 * The WebSocket URL for `url`: a path is taken relative to the page, http(s) becomes ws(s).
 * @param {string} url
 * @param {string} [base]
 * @returns {string}
 */
export function signalingUrl(url, base = globalThis.location?.href) {
  const resolved = new URL(url, base);
  if (resolved.protocol === 'http:') resolved.protocol = 'ws:';
  else if (resolved.protocol === 'https:') resolved.protocol = 'wss:';
  return resolved.href;
}

/**
 * H.264 first (packetization-mode=1 before 0), then VP8, then the rest: the server can hand
 * H.264 on to RTMP, RTSP and HLS viewers as it is. Where the browser cannot choose, its default
 * stays and the server picks from the offer.
 * @param {RTCRtpTransceiver} transceiver
 */
function preferVideoCodecs(transceiver) {
  const codecs = globalThis.RTCRtpReceiver?.getCapabilities?.('video')?.codecs;
  if (!codecs || !transceiver.setCodecPreferences) return;
  const rank = (/** @type {RTCRtpCodec} */ codec) => {
    const mime = codec.mimeType.toLowerCase();
    if (mime === 'video/h264') return /packetization-mode=1/.test(codec.sdpFmtpLine ?? '') ? 0 : 1;
    if (mime === 'video/vp8') return 2;
    return HELPERS.has(mime) ? 4 : 3;
  };
  try {
    transceiver.setCodecPreferences([...codecs].sort((a, b) => rank(a) - rank(b)));
  } catch {
    // an older browser that checks against other capabilities: its default order it is
  }
}

/** @param {RTCPeerConnection} pc */
async function rollback(pc) {
  if (pc.signalingState !== 'have-local-offer') return;
  try {
    await pc.setLocalDescription({ type: 'rollback' });
  } catch {
    // closed meanwhile: nothing to undo
  }
}

/** @param {MediaStreamTrack} track */
function trackSize(track) {
  if (track.kind !== 'video') return {};
  const { width, height } = track.getSettings();
  return width && height ? { width, height } : {};
}

/** Event handlers by event name; a throwing handler is logged and never breaks the SDK. */
class Emitter {
  /** @type {Map<string, Set<(detail: any) => void>>} */
  #handlers = new Map();

  /** @param {string} event @param {(detail: any) => void} handler */
  on(event, handler) {
    if (!this.#handlers.has(event)) this.#handlers.set(event, new Set());
    this.#handlers.get(event)?.add(handler);
  }

  /** @param {string} event @param {(detail: any) => void} handler */
  off(event, handler) {
    this.#handlers.get(event)?.delete(handler);
  }

  /** @param {string} event @param {unknown} detail */
  emit(event, detail) {
    for (const handler of [...(this.#handlers.get(event) ?? [])]) {
      try {
        handler(detail);
      } catch (error) {
        console.error(`streamhive: a "${event}" handler threw`, error);
      }
    }
  }
}

/**
 * One offer in flight per PeerConnection: `request()` runs a negotiation round, or, when one is
 * running, makes sure another runs after it, so changes made meanwhile go out together in the
 * next offer. Each request settles with the first round that starts after it.
 */
class Negotiator {
  /** @type {{resolve: () => void, reject: (error: unknown) => void}[]} */
  #waiting = [];
  #running = false;

  /** @param {() => Promise<void>} round one offer/answer exchange */
  constructor(round) {
    this.round = round;
  }

  /** @returns {Promise<void>} */
  request() {
    const settled = new Promise((resolve, reject) => this.#waiting.push({ resolve, reject }));
    if (!this.#running) this.#loop();
    return settled;
  }

  async #loop() {
    this.#running = true;
    while (this.#waiting.length) {
      const waiting = this.#waiting.splice(0);
      try {
        await this.round();
        for (const w of waiting) w.resolve();
      } catch (error) {
        for (const w of waiting) w.reject(error);
      }
    }
    this.#running = false;
  }
}

/**
 * Transceivers that no longer carry a track. They go `inactive` rather than being stopped, so a
 * connection never loses all its m-lines (and with them its one ICE/DTLS transport, which the
 * server would not let us rebuild: a new ufrag is an ICE restart), and they are reused for the
 * next track of their kind. A released transceiver becomes reusable only once an answered offer
 * has shown it inactive: reusing it in the same offer would move a mid from one track to another
 * without the browser noticing (no new `track` event).
 */
class Pool {
  /** @type {RTCRtpTransceiver[]} */
  #spare = [];
  /** @type {RTCRtpTransceiver[]} */
  #releasing = [];

  /** @param {RTCRtpTransceiver} transceiver */
  release(transceiver) {
    transceiver.direction = 'inactive';
    this.#releasing.push(transceiver);
  }

  /** The transceivers released so far, to `settle` once the offer about to be made is answered. */
  pending() {
    return [...this.#releasing];
  }

  /** @param {RTCRtpTransceiver[]} released */
  settle(released) {
    this.#releasing = this.#releasing.filter((t) => !released.includes(t));
    this.#spare.push(...released);
  }

  /**
   * A reusable transceiver of this kind that `fits`, taken out of the pool, or null.
   * @param {string} kind
   * @param {(t: RTCRtpTransceiver) => boolean} [fits]
   */
  take(kind, fits = () => true) {
    const index = this.#spare.findIndex((t) => t.receiver.track.kind === kind && fits(t));
    return index < 0 ? null : this.#spare.splice(index, 1)[0];
  }
}

/** A room: connect with `join()`, then publish, subscribe (automatic by default) and chat. */
export class Room {
  /** @type {Map<string, Participant>} everyone else, by identity */
  participants = new Map();
  /** @type {Map<Source, LocalTrack>} what we publish, by source */
  localTracks = new Map();
  /** @type {string | null} our identity, once joined */
  identity = null;
  /** @type {string | null} our name, once joined */
  name = null;
  /** @type {string | null} the room's name, once joined */
  roomName = null;
  /** @type {Record<string, any>} what the token allows (absent grants mean allowed) */
  grants = {};
  /** @type {'new' | 'joining' | 'joined' | 'closed'} */
  state = 'new';

  #options;
  #events = new Emitter();
  /** @type {WebSocket | null} */
  #ws = null;
  /** @type {RTCIceServer[]} */
  #iceServers = [];
  /** @type {RTCPeerConnection | null} */
  #publishPc = null;
  /** @type {RTCPeerConnection | null} */
  #subscribePc = null;
  /** @type {RTCDataChannel | null} the publish connection's "data" channel: chat and app messages */
  #channel = null;
  #publishing = new Negotiator(() => this.#publishRound());
  #subscribing = new Negotiator(() => this.#subscribeRound());
  #publishPool = new Pool();
  #subscribePool = new Pool();
  /** @type {WeakMap<RTCRtpTransceiver, string>} each publish transceiver's rids, for reuse */
  #layouts = new WeakMap();
  /** @type {Map<string, {resolve: (sdp: string) => void, reject: (e: Error) => void, timer: number}>} */
  #answers = new Map();
  /** @type {Map<RTCRtpTransceiver, string>} subscribe transceiver -> the track id it carries */
  #assigned = new Map();
  /** @type {Map<RTCRtpTransceiver, {participant: Participant, track: TrackInfo, mediaTrack: MediaStreamTrack}>} */
  #delivered = new Map();
  /** Whether the server's subscriptions may differ from `#assigned` (a failed round). */
  #subscribeStale = false;
  /** @type {Map<string, boolean>} explicit subscribe/unsubscribe choices, by track id */
  #choices = new Map();
  /** @type {Map<string, string>} the last `subscription` asked for per track, to skip repeats */
  #sizes = new Map();
  /** @type {Map<Source, boolean>} mute wishes, kept for sources published later */
  #muted = new Map();
  /** @type {ReturnType<typeof setInterval> | undefined} */
  #pinger;
  /** @type {Promise<void> | null} */
  #closed = null;
  /** Why the room was closed (`room_closed`), for a close frame that says nothing. */
  #closeReason = '';
  /** @type {Set<string>} the track ids the last answered subscribe offer listed */
  #subscribed = new Set();

  /** @param {RoomOptions} options */
  constructor(options) {
    this.#options = { autoSubscribe: true, ...options };
  }

  /** The publish connection (null until the first publish), for stats. */
  get publishPc() {
    return this.#publishPc;
  }

  /** The subscribe connection (null until there is something to receive), for stats. */
  get subscribePc() {
    return this.#subscribePc;
  }

  /**
   * Listen to an event: `participant_joined` (a Participant; fired for those already in the room,
   * too), `participant_left` ({participant, reason}), `track_published` / `track_unpublished`
   * ({participant, track}), `track` ({participant, track, mediaTrack, stream}: media arrived),
   * `track_removed` ({participant, track, mediaTrack}: it stopped), `track_muted` ({participant,
   * track, muted}; participant is null for our own tracks), `active_speaker` ({speakers}),
   * `quality` ({identity, quality}), `layer` ({track, layer}), `data` ({from, participant, data}),
   * `error` ({message, code}), `closed` ({code, reason}).
   * @param {string} event
   * @param {(detail: any) => void} handler
   * @returns {() => void} removes the handler
   */
  on(event, handler) {
    this.#events.on(event, handler);
    return () => this.#events.off(event, handler);
  }

  /** @param {string} event @param {(detail: any) => void} handler */
  off(event, handler) {
    this.#events.off(event, handler);
  }

  /**
   * Open the signaling WebSocket and join. Rejects if the server closes it first (the error's
   * `code` is the close code: 4001 bad token, 4003 wrong room, 4009 full...).
   * @returns {Promise<Joined>}
   */
  join() {
    if (this.state !== 'new') return Promise.reject(new Error(`cannot join: the room is ${this.state}`));
    let ws;
    try {
      ws = new WebSocket(signalingUrl(this.#options.url));
    } catch (error) {
      return Promise.reject(error);
    }
    this.state = 'joining';
    this.#ws = ws;
    const { token, identity, name } = this.#options;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => ws.close(4008, 'no joined message'), JOIN_TIMEOUT);
      /** @param {Joined} joined */
      this.#onJoined = (joined) => {
        clearTimeout(timer);
        resolve(joined);
      };
      this.#closed = new Promise((closed) => {
        ws.addEventListener('close', (event) => {
          clearTimeout(timer);
          const joined = this.state === 'joined';
          this.#shutdown(event.code, event.reason);
          if (!joined) {
            reject(Object.assign(new Error(`join refused (${event.code} ${event.reason})`), { code: event.code }));
          }
          closed();
        });
      });
      ws.addEventListener('open', () => this.#send({ type: 'join', token, identity, name }));
      ws.addEventListener('message', (event) => this.#receive(event.data));
    });
  }

  /**
   * Publish a stream's tracks: its video as `camera` (simulcast unless `simulcast: false`) and its
   * audio as `microphone`, unless `sources` names another source per track id or per kind
   * (`{video: 'screen'}`). A source already published is replaced. Resolves once the server has
   * answered; rejects when it refuses (no publish grant, source not granted).
   * @param {MediaStream} stream
   * @param {{simulcast?: boolean, sources?: Record<string, Source>}} [options]
   */
  async publish(stream, { simulcast = true, sources = {} } = {}) {
    await this.#publishTracks(stream, (track) => ({
      source: sources[track.id] ?? sources[track.kind] ?? (track.kind === 'video' ? 'camera' : 'microphone'),
      simulcast,
      captured: false,
    }));
  }

  /**
   * Share a screen, window or tab: its video as `screen`, its audio (when the user shares some)
   * as `screen_audio`. Unpublished by itself when the user stops sharing from the browser.
   * @param {{audio?: boolean}} [options]
   * @returns {Promise<MediaStream>} the captured stream (for a local preview)
   */
  async publishScreen({ audio = true } = {}) {
    const stream = await navigator.mediaDevices.getDisplayMedia({ video: true, audio }).catch((error) => {
      if (!audio || error.name !== 'TypeError') throw error;
      return navigator.mediaDevices.getDisplayMedia({ video: true }); // no screen audio here (Safari)
    });
    for (const track of stream.getVideoTracks()) track.contentHint = 'detail';
    try {
      await this.#publishTracks(stream, (track) => ({
        source: track.kind === 'video' ? 'screen' : 'screen_audio',
        simulcast: false,
        captured: true,
      }));
    } catch (error) {
      const published = new Set([...this.localTracks.values()].map((e) => e.mediaTrack));
      for (const track of stream.getTracks()) if (!published.has(track)) track.stop(); // no capture left running
      throw error;
    }
    return stream;
  }

  /**
   * Stop publishing a source (`screen` also takes its `screen_audio`). Tracks the SDK captured
   * (the screen) are stopped; the application's own are left to it.
   * @param {Source} source
   */
  async unpublish(source) {
    const sources = source === 'screen' ? ['screen', 'screen_audio'] : [source];
    const entries = sources.map((s) => this.localTracks.get(s)).filter((e) => e !== undefined);
    if (!entries.length) return;
    for (const entry of entries) this.#releaseLocal(entry);
    await this.#publishing.request();
  }

  /**
   * Mute or unmute one of our sources: locally (the track sends silence or black) and at the
   * server, which stops forwarding it and tells everyone. Remembered for a source not yet published.
   * @param {Source} source
   * @param {boolean} muted
   */
  mute(source, muted) {
    this.#muted.set(source, muted);
    const entry = this.localTracks.get(source);
    if (!entry) return;
    entry.muted = muted;
    entry.mediaTrack.enabled = !muted;
    if (entry.negotiated) this.#send({ type: 'mute', track: entry.id, muted });
  }

  /**
   * Ask for a track at most this size (the server picks the simulcast layer that fits), or pause
   * and resume it. Repeating the last request sends nothing; one for a track not received yet is
   * kept and sent once the server has answered the offer that subscribes to it.
   * @param {string} trackId
   * @param {{width?: number, height?: number, paused?: boolean}} wish
   */
  setSubscription(trackId, { width, height, paused } = {}) {
    const text = JSON.stringify({ type: 'subscription', track: trackId, width, height, paused });
    if (this.#sizes.get(trackId) === text) return;
    this.#sizes.set(trackId, text);
    if (this.#subscribed.has(trackId)) this.#sendText(text);
  }

  /**
   * Receive a track (with `autoSubscribe: false`), or receive it again after `unsubscribe`.
   * @param {string} trackId
   */
  subscribe(trackId) {
    this.#choices.set(trackId, true);
    this.#resubscribe();
  }

  /** @param {string} trackId */
  unsubscribe(trackId) {
    this.#choices.set(trackId, false);
    this.#dropDelivered(trackId);
    this.#resubscribe();
  }

  /**
   * A chat or app message (any JSON value) to everyone, or to the listed identities.
   * @param {unknown} data
   * @param {string[]} [to]
   */
  send(data, to) {
    const message = to ? { type: 'data', data, to } : { type: 'data', data };
    if (this.#channel?.readyState === 'open') this.#channel.send(JSON.stringify(message));
    else this.#send(message);
  }

  /** Leave: the server closes the WebSocket; resolves once it is closed and `closed` has fired. */
  async leave() {
    const ws = this.#ws;
    if (!ws || !this.#closed) return;
    if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify({ type: 'leave' }));
    const timer = setTimeout(() => ws.close(1000, 'left'), LEAVE_TIMEOUT);
    if (ws.readyState === WebSocket.CONNECTING) ws.close(1000, 'left');
    await this.#closed;
    clearTimeout(timer);
  }

  /** @type {(joined: Joined) => void} */
  #onJoined = () => {};

  /** @param {Record<string, unknown>} message */
  #send(message) {
    this.#sendText(JSON.stringify(message));
  }

  /** @param {string} text */
  #sendText(text) {
    if (this.#ws?.readyState !== WebSocket.OPEN) throw new Error('not connected to the room');
    this.#ws.send(text);
  }

  /** @param {unknown} text */
  #receive(text) {
    let message;
    try {
      message = typeof text === 'string' ? JSON.parse(text) : null;
    } catch {
      message = null;
    }
    if (message === null || typeof message !== 'object' || Array.isArray(message)) {
      this.#events.emit('error', { message: 'the server sent something that is not a JSON object' });
      return;
    }
    const handle = this.#onServer[message.type];
    if (handle) handle(message);
  }

  /** One handler per server message type; unknown types are ignored (newer servers may add some). */
  #onServer = {
    joined: (/** @type {Joined} */ m) => {
      this.state = 'joined';
      this.roomName = m.room;
      this.identity = m.identity;
      this.name = m.name;
      this.grants = m.grants ?? {};
      this.#iceServers = this.#options.iceServers ?? m.ice_servers ?? [];
      this.#pinger = setInterval(() => this.#ws?.send(JSON.stringify({ type: 'ping' })), PING_INTERVAL);
      for (const p of m.participants ?? []) this.#addParticipant(p);
      this.#onJoined(m);
      this.#resubscribe();
    },
    answer: (/** @type {any} */ m) => {
      const waiting = this.#answers.get(m.pc);
      if (!waiting) return;
      this.#answers.delete(m.pc);
      clearTimeout(waiting.timer);
      waiting.resolve(m.sdp);
    },
    participant_joined: (/** @type {any} */ m) => {
      this.#addParticipant(m.participant);
      this.#resubscribe();
    },
    participant_left: (/** @type {any} */ m) => {
      const participant = this.participants.get(m.identity);
      if (!participant) return;
      this.participants.delete(m.identity);
      for (const trackId of participant.tracks.keys()) this.#dropDelivered(trackId);
      this.#resubscribe();
      this.#events.emit('participant_left', { participant, reason: m.reason });
    },
    track_published: (/** @type {any} */ m) => {
      const track = /** @type {TrackInfo} */ (m.track);
      const local = m.identity === this.identity ? this.localTracks.get(track.source) : undefined;
      if (local) local.id = track.id;
      const participant = this.participants.get(m.identity);
      if (!participant) return;
      participant.tracks.set(track.id, track);
      this.#events.emit('track_published', { participant, track });
      this.#resubscribe();
    },
    track_unpublished: (/** @type {any} */ m) => {
      const participant = this.participants.get(m.identity);
      const track = participant?.tracks.get(m.track);
      if (!participant || !track) return;
      participant.tracks.delete(m.track);
      this.#dropDelivered(m.track);
      this.#resubscribe();
      this.#events.emit('track_unpublished', { participant, track });
    },
    track_muted: (/** @type {any} */ m) => {
      if (m.identity === this.identity) {
        this.#mutedByServer(m.track, m.muted);
        return;
      }
      const participant = this.participants.get(m.identity);
      const track = participant?.tracks.get(m.track);
      if (!track) return;
      track.muted = m.muted;
      this.#events.emit('track_muted', { participant, track, muted: m.muted });
    },
    active_speaker: (/** @type {any} */ m) => this.#events.emit('active_speaker', { speakers: m.speakers ?? [] }),
    quality: (/** @type {any} */ m) => this.#events.emit('quality', { identity: m.identity, quality: m.quality }),
    layer: (/** @type {any} */ m) => this.#events.emit('layer', { track: m.track, layer: m.layer }),
    layers: (/** @type {any} */ m) => {
      // The server asks us to send only the simulcast layers someone may watch.
      const entry = [...this.localTracks.values()].find((e) => e.id === m.track);
      if (!entry || !Array.isArray(m.active)) return;
      const sender = entry.transceiver.sender;
      const params = sender.getParameters();
      let changed = false;
      for (const encoding of params.encodings ?? []) {
        const active = !encoding.rid || m.active.includes(encoding.rid);
        if (encoding.active !== active) {
          encoding.active = active;
          changed = true;
        }
      }
      if (changed) sender.setParameters(params).catch((e) => this.#events.emit('error', { message: String(e) }));
      this.#events.emit('layers', { track: m.track, active: m.active });
    },
    data: (/** @type {any} */ m) =>
      this.#events.emit('data', { from: m.from, participant: this.participants.get(m.from) ?? null, data: m.data }),
    error: (/** @type {any} */ m) => {
      const waiting = typeof m.pc === 'string' ? this.#answers.get(m.pc) : undefined;
      if (waiting) {
        this.#answers.delete(m.pc);
        clearTimeout(waiting.timer);
        waiting.reject(new Error(m.message));
      }
      this.#events.emit('error', { message: m.message, code: m.code });
    },
    room_closed: (/** @type {any} */ m) => {
      this.#closeReason = String(m.reason ?? '');
    },
  };

  /** @param {{identity: string, name?: string, tracks?: TrackInfo[]}} p */
  #addParticipant(p) {
    /** @type {Participant} */
    const participant = {
      identity: p.identity,
      name: p.name ?? p.identity,
      tracks: new Map((p.tracks ?? []).map((t) => [t.id, t])),
    };
    this.participants.set(p.identity, participant);
    this.#events.emit('participant_joined', participant);
    for (const track of participant.tracks.values()) this.#events.emit('track_published', { participant, track });
  }

  /**
   * The server muted or unmuted one of our tracks. The echo of our own `mute` changes nothing; a
   * mute from elsewhere (the admin API) is applied here too, so the page shows it; an unmute is
   * only reported: turning someone's microphone back on is theirs to do.
   * @param {string} trackId
   * @param {boolean} muted
   */
  #mutedByServer(trackId, muted) {
    const entry = [...this.localTracks.values()].find((e) => e.id === trackId);
    if (!entry || entry.muted === muted) return;
    if (muted) {
      entry.muted = true;
      entry.mediaTrack.enabled = false;
      this.#muted.set(entry.source, true);
    }
    this.#events.emit('track_muted', { participant: null, track: entry, muted });
  }

  /** @param {RTCPeerConnection} pc @param {string} which */
  #watchConnection(pc, which) {
    pc.addEventListener('connectionstatechange', () => {
      if (pc.connectionState === 'failed') {
        this.#events.emit('error', { message: `the ${which} connection failed` });
      }
    });
  }

  #newPc(/** @type {string} */ which) {
    if (this.state !== 'joined') throw new Error(`not joined (the room is ${this.state})`);
    const pc = new RTCPeerConnection({
      iceServers: this.#iceServers,
      bundlePolicy: 'max-bundle',
      rtcpMuxPolicy: 'require',
    });
    this.#watchConnection(pc, which);
    return pc;
  }

  /**
   * Add tracks to the publish connection and negotiate.
   * @param {MediaStream} stream
   * @param {(track: MediaStreamTrack) => {source: Source, simulcast: boolean, captured: boolean}} describe
   */
  async #publishTracks(stream, describe) {
    if (this.grants.publish === false) throw new Error('this token may not publish');
    if (!this.#publishPc) {
      this.#publishPc = this.#newPc('publish');
      // Chat and app messages ride this channel once it opens (the WebSocket until then): the
      // same `data` messages, kept off the signaling path.
      const channel = this.#publishPc.createDataChannel('data');
      channel.addEventListener('message', (event) => {
        if (typeof event.data !== 'string') return;
        try {
          const message = JSON.parse(event.data);
          if (message?.type === 'data') this.#onServer.data(message);
        } catch {
          /* not ours: ignored */
        }
      });
      this.#channel = channel;
    }
    for (const track of stream.getTracks()) {
      const { source, simulcast, captured } = describe(track);
      const old = this.localTracks.get(source);
      if (old) this.#releaseLocal(old);
      const transceiver = await this.#sendTransceiver(track, source === 'camera' && simulcast);
      const muted = this.#muted.get(source) ?? false;
      track.enabled = !muted;
      /** @type {LocalTrack} */
      const entry = {
        id: `${this.identity}/${source}`,
        source,
        kind: /** @type {'audio' | 'video'} */ (track.kind),
        mediaTrack: track,
        transceiver,
        muted,
        negotiated: false,
        captured,
      };
      this.localTracks.set(source, entry);
      track.addEventListener('ended', () => {
        if (this.localTracks.get(source) === entry) this.unpublish(source).catch(() => {});
      });
    }
    await this.#publishing.request();
  }

  /**
   * A sendonly transceiver for `track`: a spare one of the same kind and simulcast layout (the
   * number of encodings is fixed when a transceiver is made), else a new one.
   * @param {MediaStreamTrack} track
   * @param {boolean} simulcast
   */
  async #sendTransceiver(track, simulcast) {
    const { width, height } = trackSize(track);
    const sendEncodings = simulcast ? simulcastEncodings(width, height) : null;
    const layout = sendEncodings ? sendEncodings.map((e) => e.rid).join(',') : '';
    const spare = this.#publishPool.take(track.kind, (t) => this.#layouts.get(t) === layout);
    if (spare) {
      spare.direction = 'sendonly';
      await spare.sender.replaceTrack(track);
      return spare;
    }
    const pc = /** @type {RTCPeerConnection} */ (this.#publishPc);
    const init = /** @type {RTCRtpTransceiverInit} */ ({ direction: 'sendonly' });
    if (sendEncodings) init.sendEncodings = sendEncodings;
    const transceiver = pc.addTransceiver(track, init);
    this.#layouts.set(transceiver, layout);
    if (track.kind === 'video') preferVideoCodecs(transceiver);
    return transceiver;
  }

  /** @param {LocalTrack} entry */
  #releaseLocal(entry) {
    if (this.localTracks.get(entry.source) === entry) this.localTracks.delete(entry.source);
    entry.transceiver.sender.replaceTrack(null).catch(() => {});
    this.#publishPool.release(entry.transceiver);
    if (entry.captured) entry.mediaTrack.stop();
  }

  /** One publish offer: `tracks` lists every source we send; one left out is unpublished. */
  async #publishRound() {
    const pc = /** @type {RTCPeerConnection} */ (this.#publishPc);
    const released = this.#publishPool.pending();
    const entries = [...this.localTracks.values()];
    await pc.setLocalDescription(await pc.createOffer());
    const offered = entries.filter((e) => e.transceiver.mid !== null && this.localTracks.get(e.source) === e);
    const tracks = offered.map((e) => ({ mid: e.transceiver.mid, source: e.source, ...trackSize(e.mediaTrack) }));
    try {
      await this.#exchange('publish', pc, tracks);
    } catch (error) {
      await rollback(pc);
      for (const entry of offered) if (!entry.negotiated) this.#releaseLocal(entry); // refused
      throw error;
    }
    this.#publishPool.settle(released);
    for (const entry of offered) {
      if (entry.negotiated) continue;
      entry.negotiated = true;
      if (entry.muted) this.#send({ type: 'mute', track: entry.id, muted: true });
    }
  }

  /**
   * Send an offer and apply the answer.
   * @param {'publish' | 'subscribe'} which
   * @param {RTCPeerConnection} pc
   * @param {object[]} tracks
   */
  async #exchange(which, pc, tracks) {
    const sdp = await new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#answers.delete(which);
        reject(new Error(`no answer to the ${which} offer`));
      }, ANSWER_TIMEOUT);
      this.#answers.set(which, { resolve, reject, timer });
      try {
        this.#send({ type: 'offer', pc: which, sdp: pc.localDescription?.sdp, tracks });
      } catch (error) {
        clearTimeout(timer);
        this.#answers.delete(which);
        reject(error);
      }
    });
    await pc.setRemoteDescription({ type: 'answer', sdp });
  }

  #wants(/** @type {string} */ trackId) {
    return this.#choices.get(trackId) ?? this.#options.autoSubscribe;
  }

  /** Bring the subscribe connection in line with what we want to receive. */
  #resubscribe() {
    if (this.state !== 'joined') return;
    this.#subscribing.request().catch((error) => {
      if (this.state === 'joined') this.#events.emit('error', { message: `subscribing failed: ${error.message}` });
    });
  }

  /**
   * The media of a track we no longer receive (unpublished, its publisher left, unsubscribed):
   * `track_removed`, once, as soon as we know.
   * @param {string} trackId
   */
  #dropDelivered(trackId) {
    for (const [transceiver, delivered] of this.#delivered) {
      if (delivered.track.id !== trackId) continue;
      this.#delivered.delete(transceiver);
      this.#events.emit('track_removed', delivered);
    }
  }

  /**
   * Release transceivers whose track went away and give each wanted track one; returns whether
   * anything changed.
   */
  #assignTransceivers() {
    /** @type {Map<string, TrackInfo>} */
    const wanted = new Map();
    if (this.grants.subscribe !== false) {
      for (const participant of this.participants.values()) {
        for (const track of participant.tracks.values()) if (this.#wants(track.id)) wanted.set(track.id, track);
      }
    }
    let changed = false;
    for (const [transceiver, trackId] of this.#assigned) {
      if (wanted.has(trackId)) continue;
      this.#assigned.delete(transceiver);
      this.#subscribePool.release(transceiver);
      this.#dropDelivered(trackId);
      changed = true;
    }
    const carried = new Set(this.#assigned.values());
    for (const [trackId, track] of wanted) {
      if (carried.has(trackId)) continue;
      this.#subscribePc ??= this.#newSubscribePc();
      let transceiver = this.#subscribePool.take(track.kind);
      if (transceiver) transceiver.direction = 'recvonly';
      else transceiver = this.#subscribePc.addTransceiver(track.kind, { direction: 'recvonly' });
      this.#assigned.set(transceiver, trackId);
      changed = true;
    }
    return changed;
  }

  /** One subscribe offer: `tracks` maps each receiving transceiver's mid to its track id. */
  async #subscribeRound() {
    if (!this.#assignTransceivers() && !this.#subscribeStale) return;
    const pc = this.#subscribePc;
    if (!pc) return;
    const released = this.#subscribePool.pending();
    this.#subscribeStale = true;
    await pc.setLocalDescription(await pc.createOffer());
    const tracks = [...this.#assigned]
      .filter(([transceiver]) => transceiver.mid !== null)
      .map(([transceiver, track]) => ({ mid: transceiver.mid, track }));
    try {
      await this.#exchange('subscribe', pc, tracks);
    } catch (error) {
      await rollback(pc);
      throw error;
    }
    this.#subscribeStale = false;
    this.#subscribePool.settle(released);
    const before = this.#subscribed;
    this.#subscribed = new Set(tracks.map((t) => t.track));
    for (const trackId of this.#subscribed) {
      const wish = this.#sizes.get(trackId); // asked for before we received it
      if (wish && !before.has(trackId)) this.#sendText(wish);
    }
  }

  #newSubscribePc() {
    const pc = this.#newPc('subscribe');
    pc.addEventListener('track', (event) => {
      const trackId = this.#assigned.get(event.transceiver) ?? '';
      const participant = [...this.participants.values()].find((p) => p.tracks.has(trackId));
      const track = participant?.tracks.get(trackId);
      if (!participant || !track) return; // gone while the offer was out: the next one drops it
      const delivered = { participant, track, mediaTrack: event.track };
      this.#delivered.set(event.transceiver, delivered);
      this.#events.emit('track', { ...delivered, stream: new MediaStream([event.track]) });
    });
    return pc;
  }

  /**
   * The WebSocket closed (we left, the server closed us, or the network went): everything ends.
   * @param {number} code
   * @param {string} reason
   */
  #shutdown(code, reason) {
    if (this.state === 'closed') return;
    this.state = 'closed';
    clearInterval(this.#pinger);
    for (const waiting of this.#answers.values()) {
      clearTimeout(waiting.timer);
      waiting.reject(new Error(`the room connection closed (${code})`));
    }
    this.#answers.clear();
    for (const entry of this.localTracks.values()) if (entry.captured) entry.mediaTrack.stop();
    this.#publishPc?.close();
    this.#subscribePc?.close();
    this.#events.emit('closed', { code, reason: reason || this.#closeReason });
  }
}
