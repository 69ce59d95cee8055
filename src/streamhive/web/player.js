// The player page: WebRTC (WHEP) first, HLS when WebRTC is refused or cannot connect.
import {
  SignallingError,
  backoff,
  displayPath,
  hangup,
  negotiate,
  sleep,
  streamPath,
  watch,
} from '/_streamhive/whip.js';

/** How long WebRTC may take to connect before HLS takes over (UDP and TCP to the ICE port blocked). */
const CONNECT_TIMEOUT = 5000;
/** Longest wait between asks for a stream not live yet: a 404 is cheap, a late start is not. */
const WAITING_POLL = 4000;

const video = document.getElementById('video');
const stateView = document.getElementById('state');
const modeView = document.getElementById('mode');
const noteView = document.getElementById('note');
const unmute = document.getElementById('unmute');

const path = streamPath(location.pathname);
const token = new URLSearchParams(location.search).get('token');
let resource = null; // the WHEP session resource, DELETEd when the page goes

const player = {
  pc: null,
  state: 'connecting',
  mode: 'webrtc',
  stats,
};
window.streamhive = player;

function show(state, note) {
  player.state = state;
  stateView.textContent = state;
  stateView.dataset.state = state;
  modeView.textContent = player.mode === 'webrtc' ? 'WebRTC' : 'HLS';
  if (note !== undefined) noteView.textContent = note;
}

/** Decoded media so far, for tests and curious people: from WebRTC stats or the video element. */
async function stats() {
  if (player.mode === 'hls' || !player.pc) {
    const quality = video.getVideoPlaybackQuality();
    return {
      framesDecoded: quality.totalVideoFrames,
      frameWidth: video.videoWidth,
      frameHeight: video.videoHeight,
      audioSamples: null, // no such count for <video>; audioBytes says whether audio decodes
      audioBytes: video.webkitAudioDecodedByteCount ?? null,
    };
  }
  const result = { framesDecoded: 0, frameWidth: 0, frameHeight: 0, audioSamples: 0, audioBytes: 0 };
  (await player.pc.getStats()).forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    if (s.kind === 'video') {
      result.framesDecoded += s.framesDecoded ?? 0;
      result.frameWidth = s.frameWidth ?? result.frameWidth;
      result.frameHeight = s.frameHeight ?? result.frameHeight;
    } else if (s.kind === 'audio') {
      result.audioSamples += s.totalSamplesReceived ?? 0;
      result.audioBytes += s.bytesReceived ?? 0;
    }
  });
  return result;
}

/**
 * One WHEP session, start to end. Returns what happens next: `hls` (give up on WebRTC),
 * `failed` (not allowed), `waiting` (not live yet) or `retry`, with the reason to show.
 */
async function webrtcSession(playedBefore) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  player.pc = pc;
  pc.addTransceiver('video', { direction: 'recvonly' });
  pc.addTransceiver('audio', { direction: 'recvonly' });
  video.srcObject = new MediaStream(pc.getReceivers().map((r) => r.track));
  try {
    ({ location: resource } = await negotiate(pc, `/${path}/whep`, token));
  } catch (error) {
    pc.close();
    if (error instanceof SignallingError) {
      if (error.status === 404) return { next: 'waiting', note: 'not live yet' };
      if (error.status === 503) return { next: 'retry', note: `server busy (${error.message})` };
      // The same credentials decide HLS: falling back would only fail less clearly.
      if (error.status === 401 || error.status === 403) {
        const note = `not allowed to watch (${error.message}): open this page with ?token=...`;
        return { next: 'failed', note };
      }
      return { next: 'hls', note: `WebRTC refused: ${error.message}` };
    }
    if (error instanceof TypeError) return { next: 'retry', note: `server unreachable (${error.message})` };
    return { next: 'hls', note: `WebRTC unusable here: ${error.message}` };
  }
  const playing = () => {
    if (player.pc === pc && pc.connectionState === 'connected') show('playing', '');
  };
  const onConnected = () => {
    if (video.readyState >= HTMLMediaElement.HAVE_CURRENT_DATA) playing();
    else video.addEventListener('loadeddata', playing, { once: true });
  };
  const end = await watch(pc, { connectTimeout: CONNECT_TIMEOUT, onConnected });
  pc.close();
  hangup(resource, token);
  resource = null;
  if (!end.connected && !playedBefore) return { next: 'hls', note: end.reason };
  return { next: 'retry', note: end.reason, played: end.connected };
}

async function playWebRtc() {
  let played = false;
  for (let attempt = 0; ; attempt++) {
    show('connecting');
    const outcome = await webrtcSession(played);
    if (outcome.next === 'hls') return playHls(outcome.note);
    if (outcome.next === 'failed') return show('failed', outcome.note);
    if (outcome.played) {
      played = true;
      attempt = 0;
    }
    const waiting = outcome.next === 'waiting';
    const delay = waiting ? Math.min(backoff(attempt), WAITING_POLL) : backoff(attempt);
    show(waiting ? 'waiting' : 'reconnecting', `${outcome.note}; trying again in ${delay / 1000} s`);
    await sleep(delay);
  }
}

function loadScript(src) {
  return new Promise((resolve, reject) => {
    const script = document.createElement('script');
    script.src = src;
    script.onload = resolve;
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.append(script);
  });
}

/** HLS: natively where the browser can (Safari), else with hls.js from the page's data-hls-js. */
async function playHls(why) {
  player.mode = 'hls';
  player.pc = null;
  const note = `${why} — playing HLS instead`;
  show('connecting', note);
  video.srcObject = null;
  const url = `/${path}/index.m3u8${token ? `?token=${encodeURIComponent(token)}` : ''}`;
  video.addEventListener('playing', () => {
    nativeAttempt = 0;
    show('playing', note);
  });
  video.addEventListener('waiting', () => show('buffering'));
  if (video.canPlayType('application/vnd.apple.mpegurl')) {
    video.addEventListener('error', () => retryNative(url, note));
    video.src = url;
    return;
  }
  try {
    await loadScript(document.documentElement.dataset.hlsJs);
  } catch (error) {
    show('failed', `${why}; and HLS needs hls.js, but ${error.message}`);
    return;
  }
  if (!window.Hls?.isSupported()) {
    show('failed', `${why}; and this browser cannot play HLS either`);
    return;
  }
  startHlsJs(url, note, 0);
}

let nativeAttempt = 0;

/** Native HLS errors say nothing of HTTP; the playlist's status, fetched again, says more. */
async function retryNative(url, note) {
  const delay = backoff(nativeAttempt++);
  let why = video.error?.message || `error ${video.error?.code}`;
  try {
    const response = await fetch(url, { cache: 'no-store' });
    if (!response.ok) why = `${response.status} ${response.statusText}`;
  } catch (error) {
    why = error.message;
  }
  show('reconnecting', `${note}; HLS failed (${why}), trying again in ${delay / 1000} s`);
  await sleep(delay);
  video.src = url;
}

function startHlsJs(url, note, attempt) {
  const hls = new window.Hls({ lowLatencyMode: true });
  hls.on(window.Hls.Events.MANIFEST_PARSED, () => {
    attempt = 0;
  });
  hls.on(window.Hls.Events.ERROR, async (_, data) => {
    if (!data.fatal) return;
    if (data.type === window.Hls.ErrorTypes.MEDIA_ERROR) {
      hls.recoverMediaError();
      return;
    }
    hls.destroy();
    const delay = backoff(attempt);
    const status = data.response?.code ? ` ${data.response.code}` : '';
    show('reconnecting', `${note}; HLS ${data.details}${status}, trying again in ${delay / 1000} s`);
    await sleep(delay);
    startHlsJs(url, note, attempt + 1);
  });
  hls.loadSource(url);
  hls.attachMedia(video);
}

unmute.addEventListener('click', () => {
  video.muted = !video.muted;
  unmute.textContent = video.muted ? 'Unmute' : 'Mute';
  video.play().catch(() => {});
});

addEventListener('pagehide', () => {
  hangup(resource, token);
  player.pc?.close();
});
// A page restored from the back/forward cache has closed sessions: start again.
addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});

document.title = `${displayPath(path)} · streamhive`;
document.getElementById('path').textContent = displayPath(path);
playWebRtc();
