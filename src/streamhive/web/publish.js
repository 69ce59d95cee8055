// The publish page: camera and microphone to the server over WHIP, republishing after failures.
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

/** Longer than the player's: a publisher has no fallback, and ICE-TCP may need the time. */
const CONNECT_TIMEOUT = 10000;
/** WHIP answers worth retrying: someone else is publishing (409), or the server is busy. */
const RETRY_STATUS = new Set([409, 429, 500, 502, 503, 504]);

const preview = document.getElementById('preview');
const stateView = document.getElementById('state');
const noteView = document.getElementById('note');
const codecView = document.getElementById('codec');

const path = streamPath(location.pathname, '/publish');
const params = new URLSearchParams(location.search);
const token = params.get('token');
/** H.264 unless `?codec=` says otherwise: RTMP, RTSP and HLS players can then watch as it is. */
const wantedCodec = (params.get('codec') || 'h264').toLowerCase();
let resource = null;

const publisher = { pc: null, state: 'starting', codec: null, stats };
window.streamhive = publisher;

function show(state, note) {
  publisher.state = state;
  stateView.textContent = state;
  stateView.dataset.state = state;
  if (note !== undefined) noteView.textContent = note;
}

/** What is going out, for tests and for the page: frames, size and the codec the server chose. */
async function stats() {
  const result = { framesEncoded: 0, frameWidth: 0, frameHeight: 0, codec: null, audioBytes: 0 };
  if (!publisher.pc) return result;
  const report = await publisher.pc.getStats();
  report.forEach((s) => {
    if (s.type !== 'outbound-rtp') return;
    if (s.kind === 'video') {
      result.framesEncoded += s.framesEncoded ?? 0;
      result.frameWidth = s.frameWidth ?? result.frameWidth;
      result.frameHeight = s.frameHeight ?? result.frameHeight;
      result.codec = report.get(s.codecId)?.mimeType ?? result.codec;
    } else if (s.kind === 'audio') {
      result.audioBytes += s.bytesSent ?? 0;
    }
  });
  return result;
}

/** Not codecs but helpers (retransmission, redundancy, FEC): kept whatever the choice. */
const HELPERS = new Set(['video/rtx', 'video/red', 'video/ulpfec', 'video/flexfec-03']);

/**
 * H.264 by default goes first in the offer, the rest staying as fallbacks; a codec named with
 * `?codec=` is the only one offered, since the server answers in its own order of preference
 * (H.264 first) and would otherwise pick H.264 anyway. packetization-mode=1 H.264 comes before
 * mode 0. Returns why not, when the browser cannot send the codec.
 */
function preferCodec(transceiver) {
  const mimeType = `video/${wantedCodec}`;
  const canSend = RTCRtpSender.getCapabilities?.('video')?.codecs ?? [];
  if (!canSend.some((c) => c.mimeType.toLowerCase() === mimeType)) {
    return `this browser cannot send ${wantedCodec.toUpperCase()}; using its default codec`;
  }
  if (!transceiver.setCodecPreferences) return 'codec choice unsupported here; using the default codec';
  const only = params.has('codec');
  const rank = (codec) =>
    (codec.mimeType.toLowerCase() === mimeType ? 0 : 2) +
    (/packetization-mode=1/.test(codec.sdpFmtpLine ?? '') ? 0 : 1);
  const codecs = (RTCRtpReceiver.getCapabilities('video')?.codecs ?? canSend)
    .filter((c) => !only || c.mimeType.toLowerCase() === mimeType || HELPERS.has(c.mimeType.toLowerCase()))
    .sort((a, b) => rank(a) - rank(b));
  try {
    transceiver.setCodecPreferences(codecs);
  } catch (error) {
    return `could not prefer ${wantedCodec.toUpperCase()} (${error.message}); using the default codec`;
  }
  return '';
}

/** One WHIP session; returns `fatal` when trying again cannot help, and why it ended. */
async function publishSession(media) {
  const pc = new RTCPeerConnection({ iceServers: [] });
  publisher.pc = pc;
  let codecNote = '';
  for (const track of media.getTracks()) {
    const transceiver = pc.addTransceiver(track, { direction: 'sendonly', streams: [media] });
    if (track.kind === 'video') codecNote = preferCodec(transceiver);
  }
  try {
    ({ location: resource } = await negotiate(pc, `/${path}/whip`, token));
  } catch (error) {
    pc.close();
    if (error instanceof SignallingError) {
      return { fatal: !RETRY_STATUS.has(error.status), note: `WHIP refused: ${error.message}` };
    }
    if (error instanceof TypeError) return { note: `server unreachable (${error.message})` };
    return { fatal: true, note: `WebRTC unusable here: ${error.message}` };
  }
  const onConnected = async () => {
    show('publishing', codecNote);
    const { codec } = await stats();
    publisher.codec = codec;
    codecView.textContent = codec ? codec.replace(/^video\//, '') : '';
  };
  const end = await watch(pc, { connectTimeout: CONNECT_TIMEOUT, onConnected });
  pc.close();
  hangup(resource, token);
  resource = null;
  return { note: end.reason, published: end.connected };
}

async function capture() {
  if (!navigator.mediaDevices?.getUserMedia) {
    throw new Error('the browser gives camera access only to HTTPS pages (or localhost)');
  }
  const video = { width: 640, height: 480 };
  try {
    return await navigator.mediaDevices.getUserMedia({ video, audio: true });
  } catch (error) {
    if (error.name !== 'NotFoundError') throw error;
    return navigator.mediaDevices.getUserMedia({ video }); // no microphone: video alone
  }
}

async function main() {
  show('starting', 'asking for the camera and microphone');
  let media;
  try {
    media = await capture();
  } catch (error) {
    show('failed', `no camera: ${error.message}`);
    return;
  }
  preview.srcObject = media;
  for (let attempt = 0; ; attempt++) {
    show('connecting', '');
    const outcome = await publishSession(media);
    if (outcome.fatal) {
      show('failed', outcome.note);
      return;
    }
    if (outcome.published) attempt = 0;
    const delay = backoff(attempt);
    show('reconnecting', `${outcome.note}; trying again in ${delay / 1000} s`);
    await sleep(delay);
  }
}

addEventListener('pagehide', () => {
  hangup(resource, token);
  publisher.pc?.close();
});
addEventListener('pageshow', (event) => {
  if (event.persisted) location.reload();
});

const watchLink = document.getElementById('watch');
watchLink.href = `/${path}/${token ? `?token=${encodeURIComponent(token)}` : ''}`;
watchLink.textContent = `/${displayPath(path)}/`;
document.title = `publish ${displayPath(path)} · streamhive`;
document.getElementById('path').textContent = displayPath(path);
main();
