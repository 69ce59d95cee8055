// The room page: a video meeting over the rooms SDK. Everything another participant chooses
// (names, chat) is written with textContent, never parsed as HTML.
import { Room } from '/sdk/streamhive.js';

const ROOM_NAME = /^[A-Za-z0-9_.-]{1,64}$/;
/** Chat lines kept on screen. */
const MAX_MESSAGES = 200;
/** Longest chat message sent or shown. */
const MAX_TEXT = 2000;
/** How long a video must keep its size before we ask for the simulcast layer that fits it. */
const RESIZE_DELAY = 300;

const byId = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const roomName = location.pathname.split('/')[2] ?? '';

/** @type {Room | null} */
let room = null;
/** @type {MediaStream | null} our camera and microphone */
let media = null;
/** @type {MediaStream | null} our shared screen */
let screen = null;
/** @type {Map<string, string>} each participant's connection quality */
const qualities = new Map();

/**
 * @typedef {object} Tile
 * @property {HTMLElement} root
 * @property {HTMLVideoElement} video
 * @property {HTMLElement} name
 * @property {HTMLElement} badge
 * @property {Map<string, HTMLAudioElement>} audio by track id
 */
/** @type {Map<string, Tile>} one per participant (key: identity) and per shared screen (`identity/screen`) */
const tiles = new Map();

function show(state, note) {
  document.body.dataset.state = state;
  byId('state').textContent = state;
  if (note !== undefined) byId('note').textContent = note;
}

function note(text) {
  byId('note').textContent = text;
}

/** Identities never contain '/', so `identity/screen` cannot name anyone's camera tile. */
function tileKey(identity, source) {
  return source === 'screen' || source === 'screen_audio' ? `${identity}/screen` : identity;
}

/** @returns {Tile} */
function tileFor(key, label) {
  let tile = tiles.get(key);
  if (!tile) {
    const root = document.createElement('figure');
    root.className = 'tile';
    const video = document.createElement('video');
    video.autoplay = true;
    video.muted = true; // sound plays through <audio>: a muted video may start without a click
    video.playsInline = true;
    const caption = document.createElement('figcaption');
    const name = document.createElement('span');
    name.className = 'name';
    const badge = document.createElement('span');
    badge.className = 'badge';
    badge.hidden = true;
    caption.append(name, badge);
    root.append(video, caption);
    byId('grid').append(root);
    tile = { root, video, name, badge, audio: new Map() };
    tiles.set(key, tile);
  }
  tile.name.textContent = label;
  return tile;
}

function dropTile(key) {
  const tile = tiles.get(key);
  if (!tile) return;
  resizer.unobserve(tile.video);
  tile.video.srcObject = null;
  for (const audio of tile.audio.values()) audio.srcObject = null;
  tile.root.remove();
  tiles.delete(key);
}

/** The tracks of a participant, ours included, as {source, muted} records. */
function tracksOf(identity) {
  if (identity === room?.identity) return [...room.localTracks.values()];
  return [...(room?.participants.get(identity)?.tracks.values() ?? [])];
}

/** Redraw one participant's muted and camera-off marks, and the people list. */
function refresh(identity) {
  const tracks = tracksOf(identity);
  const mic = tracks.find((t) => t.source === 'microphone');
  const camera = tracks.find((t) => t.source === 'camera');
  const tile = tiles.get(identity);
  if (tile) {
    tile.badge.hidden = Boolean(mic) && !mic.muted;
    tile.badge.textContent = mic ? 'muted' : 'no mic';
    tile.root.classList.toggle('camera-off', !camera || camera.muted);
  }
  renderPeople();
}

function renderPeople() {
  const list = byId('people');
  list.replaceChildren();
  if (!room?.identity) return;
  const people = [
    { identity: room.identity, name: `${room.name} (you)` },
    ...[...room.participants.values()].map((p) => ({ identity: p.identity, name: p.name })),
  ];
  for (const { identity, name } of people) {
    const item = document.createElement('li');
    const mic = tracksOf(identity).find((t) => t.source === 'microphone');
    const quality = qualities.get(identity);
    item.textContent = `${name}${mic?.muted ? ' · muted' : ''}${quality ? ` · ${quality}` : ''}`;
    if (quality) item.dataset.quality = quality;
    list.append(item);
  }
}

/** Asks the server for the layer that fits each remote video once it has kept its size a moment. */
const resizeTimers = new WeakMap();
const resizer = new ResizeObserver((entries) => {
  for (const { target } of entries) {
    clearTimeout(resizeTimers.get(target));
    resizeTimers.set(target, setTimeout(() => askSize(target), RESIZE_DELAY));
  }
});

function askSize(video) {
  const trackId = video.dataset.track;
  if (!trackId || room?.state !== 'joined') return;
  const scale = window.devicePixelRatio || 1;
  room.setSubscription(trackId, {
    width: Math.round(video.clientWidth * scale),
    height: Math.round(video.clientHeight * scale),
  });
}

/** Starts one participant's sound; a browser that wants a click first gets the "Enable sound" button. */
function playAudio(audio) {
  audio.play().catch(() => {
    byId('audio').hidden = false;
  });
}

function onTrack({ participant, track, stream }) {
  const screenShare = track.source === 'screen' || track.source === 'screen_audio';
  const label = screenShare ? `${participant.name} (screen)` : participant.name;
  const tile = tileFor(tileKey(participant.identity, track.source), label);
  if (track.kind === 'video') {
    tile.video.srcObject = stream;
    tile.video.dataset.track = track.id;
    resizer.observe(tile.video);
  } else {
    const audio = document.createElement('audio');
    audio.autoplay = true;
    audio.srcObject = stream;
    tile.audio.set(track.id, audio);
    tile.root.append(audio);
    playAudio(audio);
  }
  refresh(participant.identity);
}

function onTrackRemoved({ participant, track }) {
  const key = tileKey(participant.identity, track.source);
  const tile = tiles.get(key);
  if (!tile) return;
  if (track.kind === 'video' && tile.video.dataset.track === track.id) {
    resizer.unobserve(tile.video);
    tile.video.srcObject = null;
    delete tile.video.dataset.track;
  }
  tile.audio.get(track.id)?.remove();
  tile.audio.delete(track.id);
  if (key !== participant.identity && !tile.video.dataset.track && !tile.audio.size) dropTile(key);
}

function addMessage(from, text, mine = false) {
  const list = byId('messages');
  const item = document.createElement('li');
  if (mine) item.className = 'mine';
  const who = document.createElement('b');
  who.textContent = from;
  item.append(who, document.createTextNode(`: ${text}`));
  list.append(item);
  while (list.children.length > MAX_MESSAGES) list.firstElementChild.remove();
  item.scrollIntoView({ block: 'nearest' });
}

function onData({ from, participant, data }) {
  if (from === room.identity) return; // our own, already shown
  if (data?.type !== 'chat' || typeof data.text !== 'string') return;
  addMessage(participant?.name ?? from, data.text.slice(0, MAX_TEXT));
}

/** Tiles, marks and chat follow the room's events. */
function listen(r) {
  r.on('participant_joined', (p) => {
    tileFor(p.identity, p.name);
    refresh(p.identity);
  });
  r.on('participant_left', ({ participant }) => {
    dropTile(participant.identity);
    dropTile(`${participant.identity}/screen`);
    qualities.delete(participant.identity);
    renderPeople();
  });
  r.on('track_published', ({ participant }) => refresh(participant.identity));
  r.on('track_unpublished', ({ participant }) => refresh(participant.identity));
  r.on('track', onTrack);
  r.on('track_removed', onTrackRemoved);
  r.on('track_muted', ({ participant, track, muted }) => {
    if (participant === null) mutedByServer(track.source, muted);
    refresh(participant?.identity ?? r.identity);
  });
  r.on('active_speaker', ({ speakers }) => {
    for (const [key, tile] of tiles) tile.root.classList.toggle('speaking', key === speakers[0]);
  });
  r.on('quality', ({ identity, quality }) => {
    qualities.set(identity, quality);
    renderPeople();
  });
  r.on('data', onData);
  r.on('error', ({ message }) => note(message));
  r.on('closed', ({ code, reason }) => {
    for (const key of [...tiles.keys()]) dropTile(key);
    for (const track of media?.getTracks() ?? []) track.stop();
    media = null;
    screen = null;
    resetButtons();
    byId('call').hidden = true;
    byId('join').hidden = false;
    if (code === 1000) show('left', 'you left the room');
    else show('error', `disconnected: ${code}${reason ? ` ${reason}` : ''}`);
  });
}

const TOGGLES = {
  mic: { source: 'microphone', on: 'Mute mic', off: 'Unmute mic' },
  camera: { source: 'camera', on: 'Camera off', off: 'Camera on' },
};

function setPressed(id, pressed) {
  const button = byId(id);
  button.setAttribute('aria-pressed', String(pressed));
  button.textContent = pressed ? TOGGLES[id].off : TOGGLES[id].on;
}

function toggle(id) {
  const muted = byId(id).getAttribute('aria-pressed') !== 'true';
  try {
    room.mute(TOGGLES[id].source, muted);
  } catch (error) {
    note(error.message);
    return;
  }
  setPressed(id, muted);
  refresh(room.identity);
}

/** The server (an admin) muted us: the button says so. */
function mutedByServer(source, muted) {
  const id = Object.keys(TOGGLES).find((key) => TOGGLES[key].source === source);
  if (id && muted) setPressed(id, true);
  if (muted) note(`the room muted your ${source}`);
}

function endScreen() {
  screen = null;
  if (room?.identity) dropTile(`${room.identity}/screen`);
  byId('screen').setAttribute('aria-pressed', 'false');
  byId('screen').textContent = 'Share screen';
}

async function toggleScreen() {
  const button = byId('screen');
  if (screen) {
    await room.unpublish('screen').catch((error) => note(error.message));
    endScreen();
    return;
  }
  button.disabled = true;
  try {
    screen = await room.publishScreen();
  } catch (error) {
    note(`screen not shared: ${error.message}`);
    return;
  } finally {
    button.disabled = false;
  }
  tileFor(`${room.identity}/screen`, `${room.name} (your screen)`).video.srcObject = screen;
  screen.getVideoTracks()[0]?.addEventListener('ended', endScreen); // stopped from the browser's bar
  button.setAttribute('aria-pressed', 'true');
  button.textContent = 'Stop sharing';
}

function resetButtons() {
  setPressed('mic', false);
  setPressed('camera', false);
  endScreen();
  byId('audio').hidden = true;
}

/** Camera and microphone, else whichever of them there is, else none: we can still watch. */
async function capture() {
  if (!navigator.mediaDevices?.getUserMedia) {
    note('the browser gives camera access only to HTTPS pages (or localhost): joining without it');
    return null;
  }
  const video = { width: { ideal: 1280 }, height: { ideal: 720 } };
  for (const constraints of [{ video, audio: true }, { video }, { audio: true }]) {
    try {
      return await navigator.mediaDevices.getUserMedia(constraints);
    } catch (error) {
      if (error.name !== 'NotFoundError' && error.name !== 'OverconstrainedError') {
        note(`joining without camera and microphone: ${error.message}`);
        return null;
      }
    }
  }
  return null;
}

async function publishMedia() {
  const me = tileFor(room.identity, `${room.name} (you)`);
  me.root.classList.add('local');
  byId('mic').disabled = !media?.getAudioTracks().length;
  byId('camera').disabled = !media?.getVideoTracks().length;
  if (!media || room.grants.publish === false) return;
  me.video.srcObject = media;
  try {
    await room.publish(media, { simulcast: true });
  } catch (error) {
    note(`not publishing: ${error.message}`);
  }
  refresh(room.identity);
}

async function join(event) {
  event?.preventDefault();
  if (room && room.state !== 'closed') return;
  byId('join').hidden = true;
  show('joining', 'asking for the camera and microphone');
  media = await capture();
  room = new Room({
    url: `/rooms/${roomName}/ws`,
    token: params.get('token') ?? undefined,
    identity: params.get('identity') ?? undefined,
    name: byId('name').value.trim() || undefined,
  });
  window.streamhiveRoom = room;
  listen(room);
  show('joining', 'connecting');
  try {
    await room.join();
  } catch (error) {
    show('error', error.message);
    return;
  }
  byId('call').hidden = false;
  renderPeople();
  await publishMedia();
  if (room.state === 'joined') show('joined', '');
}

function sendChat(event) {
  event.preventDefault();
  const input = byId('message');
  const text = input.value.trim().slice(0, MAX_TEXT);
  if (!text || room?.state !== 'joined') return;
  try {
    room.send({ type: 'chat', text });
  } catch (error) {
    note(error.message);
    return;
  }
  addMessage(`${room.name} (you)`, text, true);
  input.value = '';
}

byId('room').textContent = roomName;
document.title = `${roomName} · streamhive`;
byId('name').value = params.get('name') ?? params.get('identity') ?? '';
byId('join').addEventListener('submit', join);
byId('chat').addEventListener('submit', sendChat);
byId('mic').addEventListener('click', () => toggle('mic'));
byId('camera').addEventListener('click', () => toggle('camera'));
byId('screen').addEventListener('click', toggleScreen);
byId('leave').addEventListener('click', () => room?.leave());
byId('audio').addEventListener('click', () => {
  byId('audio').hidden = true;
  for (const tile of tiles.values()) for (const audio of tile.audio.values()) playAudio(audio);
});
addEventListener('pagehide', () => room?.leave());

if (!ROOM_NAME.test(roomName)) {
  byId('join').hidden = true;
  show('error', 'this is not a room name (1-64 letters, digits, "_", "." or "-")');
} else if (params.get('autojoin') === '1') {
  join();
}
