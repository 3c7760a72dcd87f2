// chat.js — the chat page itself: takes the token (URL fragment or the
// host's postMessage), drives the socket (socket.js), and draws the
// conversation: messages with their pending / streaming / stopped states,
// history and its reconciliation after a reconnect, answers a provider
// rewrote (a replacing chunk), an agent's working status, a note under an
// answer that did not end complete, the sessions panel,
// the model selector, help requests and a person joining, errors in plain
// words, files (uploads.js) and voice messages (recorder.js). Markdown is
// rendered by markdown.js into DOM nodes; message text never goes through
// innerHTML. Every string comes from strings.js.
'use strict';

(() => {
	var S = window.ChatboxStrings;
	var Uploads = window.ChatboxUploads;

	function $(id) {
		return document.getElementById(id);
	}

	function el(tag, cls, text) {
		var node = document.createElement(tag);
		if (cls) node.className = cls;
		if (text != null) node.textContent = text;
		return node;
	}

	/** Every element with an id, by its id in camelCase (message-list → ui.messageList). */
	var ui = {};
	document.querySelectorAll('[id]').forEach((node) => {
		ui[node.id.replace(/-(\w)/g, (m, c) => c.toUpperCase())] = node;
	});

	// Strings into the markup

	document.title = S.title;
	document.querySelectorAll('[data-text]').forEach((node) => {
		node.textContent = S[node.dataset.text];
	});
	document.querySelectorAll('[data-label]').forEach((node) => {
		node.setAttribute('aria-label', S[node.dataset.label]);
		if (node.tagName === 'BUTTON') node.title = S[node.dataset.label];
	});
	document.querySelectorAll('[data-placeholder]').forEach((node) => {
		node.placeholder = S[node.dataset.placeholder];
	});

	// State

	var state = {
		token: null,
		connState: 'connecting',
		sessionId: null, // the connection's session
		viewing: null, // the session on screen
		readOnly: false, // viewing an earlier, ended session
		models: [],
		modelId: null,
		sessions: [],
		sessionsCursor: null,
		records: new Map(), // key → message record
		outbox: new Map(), // client id → frame sent but not echoed yet
		sent: new Map(), // client id → frame (for "Try again")
		streaming: new Set(), // records of answers in progress
		requests: new Map(), // request id → what it was for
		assisting: null, // the name of the person assisting
		rateLimitedUntil: 0,
		lastTypingSent: 0,
	};

	/** The session on screen (also data-session-id of the message list). */
	function view(sessionId) {
		state.viewing = sessionId;
		if (sessionId) ui.messageList.dataset.sessionId = sessionId;
		else delete ui.messageList.dataset.sessionId;
	}

	function newId(prefix) {
		var uuid;
		if (window.crypto && crypto.randomUUID) {
			uuid = crypto.randomUUID();
		} else {
			var bytes = new Uint8Array(16);
			crypto.getRandomValues(bytes);
			uuid = Array.prototype.map
				.call(bytes, (b) => (b + 256).toString(16).slice(1))
				.join('');
		}
		return prefix + '-' + uuid;
	}

	// The socket

	var socket = new window.ChatboxSocket({
		onFrame: onFrame,
		onState: onConnState,
		onEnded: onEnded,
		onAuthFailed: (code) => {
			showNotice(S.errors[code] || S.authNeeded, null);
			postToHost({ type: 'chatbox:auth_required' });
		},
		onRefused: (code) => {
			showNotice(S.errors[code] || S.errorGeneric, null);
		},
	});

	function send(frame) {
		return socket.send(frame);
	}

	var uploads = new Uploads({
		send: send,
		newId: newId,
		onChange: drawUpload,
	});

	// Token

	function postToHost(message) {
		try {
			window.parent.postMessage(message, '*');
		} catch (e) {
			/* no host */
		}
	}

	function tokenFromHash() {
		var match = /(?:^#|&)token=([^&]+)/.exec(window.location.hash);
		if (!match) return null;
		var token = null;
		try {
			token = decodeURIComponent(match[1]);
		} catch (e) {
			token = match[1];
		}
		history.replaceState(history.state, '', window.location.pathname + window.location.search);
		return token;
	}

	// The token is kept for this tab only (sessionStorage), so a reload
	// carries on; it is dropped as soon as the server refuses it.
	var TOKEN_KEY = 'chatbox.token';
	function keepToken(token) {
		try {
			if (token) sessionStorage.setItem(TOKEN_KEY, token);
			else sessionStorage.removeItem(TOKEN_KEY);
		} catch (e) {
			/* storage blocked (a third-party frame): memory only */
		}
	}
	function keptToken() {
		try {
			return sessionStorage.getItem(TOKEN_KEY);
		} catch (e) {
			return null;
		}
	}

	function useToken(token) {
		if (!token || typeof token !== 'string') return;
		var first = !state.token;
		state.token = token;
		keepToken(token);
		askBeforeExpiry(token);
		if (first || state.connState === 'auth') {
			socket.token = token;
			hideNotice();
			socket.connect({ sessionId: state.sessionId });
		} else {
			// The open socket keeps going on the fresh token.
			socket.reauth(token);
		}
	}

	// A socket lives no longer than its token: a minute before it expires,
	// the page asks its host for a fresh one (the same auth_required
	// handshake as at the start) and hands it to the open socket.
	var EXPIRY_MARGIN_MS = 60000;
	var expiryTimer = null;
	function tokenExpiry(token) {
		try {
			var part = token.split('.')[1].replace(/-/g, '+').replace(/_/g, '/');
			var claims = JSON.parse(atob(part));
			return typeof claims.exp === 'number' ? claims.exp * 1000 : null;
		} catch (e) {
			return null;
		}
	}
	function askBeforeExpiry(token) {
		clearTimeout(expiryTimer);
		expiryTimer = null;
		var expiresAt = tokenExpiry(token);
		if (!expiresAt || window.parent === window) return;
		var wait = Math.max(0, expiresAt - EXPIRY_MARGIN_MS - Date.now());
		// setTimeout holds at most about 24.8 days.
		if (wait > 2147483647) return;
		expiryTimer = setTimeout(() => {
			expiryTimer = null;
			postToHost({ type: 'chatbox:auth_required', reason: 'expiring' });
		}, wait);
	}

	window.addEventListener('message', (event) => {
		if (event.source !== window.parent) return;
		var data = event.data;
		if (data && typeof data === 'object' && data.type === 'chatbox:auth') useToken(data.token);
	});

	window.addEventListener('hashchange', () => {
		var token = tokenFromHash();
		if (token) useToken(token);
	});

	// Connection state

	var countdownTimer = null;

	function onConnState(name, info) {
		state.connState = name;
		if (name === 'auth') keepToken(null);
		ui.connectionStatus.dataset.state = name;
		ui.statusText.textContent = S.status[name];
		clearInterval(countdownTimer);
		if (name === 'online') {
			hideNotice();
		} else if (info.browserOffline) {
			showNotice(S.browserOffline, null);
		} else if (name === 'reconnecting' && info.retryAt) {
			var tick = () => {
				var seconds = Math.max(0, Math.ceil((info.retryAt - Date.now()) / 1000));
				showNotice(
					S.connectionLost,
					{
						label: S.reconnectNow,
						run: () => {
							socket.reconnectNow();
						},
					},
					S.format(S.reconnectIn, { seconds: seconds })
				);
			};
			tick();
			countdownTimer = setInterval(tick, 1000);
		}
		updateComposer();
	}

	function onEnded(why) {
		if (why === 'elsewhere') {
			showNotice(S.openedElsewhere, {
				label: S.takeBack,
				run: () => {
					socket.connect({ sessionId: state.sessionId });
				},
			});
		} else if (why === 'ended') {
			showNotice(S.sessionEnded, { label: S.startNewChat, run: newChat });
			listSessions();
		} else if (why === 'not_found') {
			state.sessionId = null;
		}
		endAllStreaming();
	}

	/** Changes a live region's text only when it differs (the same text set again is said again). */
	function say(node, text) {
		if (node.textContent !== text) node.textContent = text;
	}

	/** The notice (a status region): `text` is said once, `countdown` ticks on screen only. */
	function showNotice(text, action, countdown) {
		say(ui.noticeText, text);
		say(ui.noticeCountdown, countdown || '');
		ui.noticeAction.hidden = !action;
		if (action) {
			ui.noticeAction.textContent = action.label;
			ui.noticeAction.onclick = action.run;
		}
		ui.notice.hidden = false;
	}

	function hideNotice() {
		ui.notice.hidden = true;
	}

	// Frames

	function onFrame(frame) {
		switch (frame.type) {
			case 'connection_status':
				return onConnectionStatus(frame);
			case 'user_message':
			case 'ai_response':
			case 'file_upload':
			case 'voice_message':
			case 'help_request':
			case 'admin_join':
			case 'admin_leave':
				if (frame.session_id && frame.session_id !== state.viewing) return;
				return upsert(frame, false);
			case 'loading':
				if (frame.session_id && frame.session_id !== state.viewing) return;
				if (frame.metadata && frame.metadata.status === 'queued') return onQueued(frame);
				return onLoading(frame);
			case 'typing_indicator':
				return onTyping(frame);
			case 'session_list':
				return onSessionList(frame);
			case 'session_renamed':
				return onSessionRenamed(frame);
			case 'history':
				return onHistory(frame);
			case 'model_select':
				return onModelSelected(frame);
			case 'upload_slot':
				return uploads.onSlot(frame);
			case 'error':
				return onError(frame);
			default:
				return undefined;
		}
	}

	function onConnectionStatus(frame) {
		var meta = frame.metadata || {};
		if (meta.status !== 'connected') return;
		var previous = state.sessionId;
		state.sessionId = frame.session_id;
		if (!state.readOnly && state.viewing !== frame.session_id) {
			if (previous && previous !== frame.session_id) {
				// A different session than the one on screen: start afresh.
				state.outbox.clear();
			}
			clearMessages();
			view(frame.session_id);
			setAssisting(null);
		}
		var data = frame.data || {};
		setModels(data.models || state.models, frame.model_id);
		if (!state.readOnly) loadHistory(frame.session_id);
		listSessions();
		updateTitle();
	}

	// Messages

	var aliases = new Map(); // server message_id → record

	function findRecord(frame) {
		return (
			(frame.id && state.records.get(frame.id)) ||
			(frame.message_id && (state.records.get(frame.message_id) || aliases.get(frame.message_id))) ||
			(frame.seq != null && state.records.get('seq-' + frame.seq)) ||
			null
		);
	}

	function keyOf(frame) {
		if (frame.type === 'ai_response' || frame.type === 'admin_join' || frame.type === 'admin_leave') {
			return frame.message_id || (frame.seq != null ? 'seq-' + frame.seq : newId('x'));
		}
		if (frame.type === 'user_message' && frame.sender === 'admin') return frame.message_id || frame.id || newId('x');
		return frame.id || frame.message_id || (frame.seq != null ? 'seq-' + frame.seq : newId('x'));
	}

	function senderOf(frame) {
		switch (frame.type) {
			case 'ai_response':
				return 'ai';
			case 'help_request':
			case 'admin_join':
			case 'admin_leave':
				return 'system';
			case 'model_select':
				return 'system';
			default:
				return frame.sender === 'admin' ? 'admin' : 'user';
		}
	}

	/** A new message element, placed by its seq. */
	function createRecord(key, sender, seq) {
		var node = el('article', 'message');
		node.setAttribute('data-testid', 'message');
		node.dataset.sender = sender;
		node.dataset.messageId = key;
		// Who speaks, for screen readers (a person's name is shown; notices speak for themselves).
		if (sender === 'user' || sender === 'ai') {
			node.appendChild(el('span', 'visually-hidden sender-label', sender === 'user' ? S.you : S.assistant));
		}
		var bubble = el('div', 'bubble');
		var content = el('div', 'content');
		bubble.appendChild(content);
		var meta = el('div', 'meta');
		node.appendChild(bubble);
		node.appendChild(meta);
		var record = { key: key, el: node, bubble: bubble, content: content, meta: meta, sender: sender, seq: null, text: '', said: false };
		state.records.set(key, record);
		placeRecord(record, seq);
		ui.emptyState.hidden = true;
		return record;
	}

	function placeRecord(record, seq) {
		if (seq != null) {
			record.seq = seq;
			record.el.dataset.seq = String(seq);
		}
		var stick = nearBottom();
		var before = null;
		if (record.seq != null) {
			var children = ui.messageList.children;
			for (var i = 0; i < children.length; i++) {
				var child = children[i];
				if (child === record.el) continue;
				var other = child.dataset.seq;
				if (other === undefined || Number(other) > record.seq) {
					before = child;
					break;
				}
			}
		}
		if (before) ui.messageList.insertBefore(record.el, before);
		else if (record.el.parentNode !== ui.messageList || record.seq != null) ui.messageList.appendChild(record.el);
		if (stick) scrollToBottom();
	}

	function nearBottom() {
		var c = ui.conversation;
		return c.scrollHeight - c.scrollTop - c.clientHeight < 120;
	}

	function scrollToBottom() {
		ui.conversation.scrollTop = ui.conversation.scrollHeight;
	}

	function clearMessages() {
		state.records.forEach((record) => {
			if (record.job) uploads.forget(record.job);
		});
		state.records.clear();
		aliases.clear();
		state.streaming.clear();
		ui.messageList.replaceChildren();
		ui.emptyState.hidden = false;
		updateStreaming();
	}

	function timeOf(frame) {
		var when = frame.timestamp ? new Date(frame.timestamp) : new Date();
		if (isNaN(when.getTime())) when = new Date();
		return when.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
	}

	function modelName(id) {
		for (var i = 0; i < state.models.length; i++) if (state.models[i].id === id) return state.models[i].name || id;
		return id;
	}

	function setText(record, text) {
		record.text = text;
		record.content.replaceChildren(window.ChatboxMarkdown.render(text));
	}

	/** Draws a frame from the live socket or from history. */
	function upsert(frame, fromHistory) {
		var record = findRecord(frame);
		var sender = senderOf(frame);
		var stick = nearBottom();
		if (!record) record = createRecord(keyOf(frame), sender, frame.seq);
		else if (frame.seq != null && record.seq !== frame.seq) placeRecord(record, frame.seq);
		if (frame.message_id) {
			aliases.set(frame.message_id, record);
			record.el.dataset.messageId = frame.message_id;
		}
		if (frame.id) record.el.dataset.clientId = frame.id;
		record.frame = frame;

		switch (frame.type) {
			case 'user_message':
				if (frame.id) {
					state.outbox.delete(frame.id);
				}
				record.el.classList.remove('pending', 'failed');
				if (frame.sender === 'admin') drawAdminName(record, frame);
				setText(record, frame.content || '');
				setMeta(record, frame);
				if (frame.sender === 'admin' && !fromHistory) announce(record, record.nameEl.textContent);
				break;
			case 'ai_response':
				drawAnswer(record, frame);
				if (frame.done && !fromHistory) announce(record, S.assistant);
				break;
			case 'file_upload':
			case 'voice_message':
				if (frame.id) state.outbox.delete(frame.id);
				uploads.onEcho(frame);
				record.job = null;
				record.el.classList.remove('pending', 'failed');
				drawFile(record, frame);
				setMeta(record, frame);
				break;
			case 'help_request':
				if (frame.id) state.outbox.delete(frame.id);
				record.el.classList.remove('pending', 'failed');
				record.content.replaceChildren(
					el('p', null, (frame.metadata && frame.metadata.status) === 'assisted' ? S.helpAssisted : S.helpRequested)
				);
				setMeta(record, frame);
				if (!fromHistory) announce(record, null);
				break;
			case 'admin_join':
			case 'admin_leave':
				var name = (frame.metadata && frame.metadata.admin_name) || S.someone;
				var joined = frame.type === 'admin_join';
				record.content.replaceChildren(el('p', null, S.format(joined ? S.adminJoined : S.adminLeft, { name: name })));
				if (!state.readOnly) setAssisting(joined ? name : null);
				if (!fromHistory) announce(record, null);
				break;
		}
		if (!fromHistory && stick) scrollToBottom();
	}

	/**
	 * Tells a screen reader a finished message once, with its sender: the
	 * messages themselves are not a live region (a streamed answer would be
	 * read again at every chunk). The user's own messages are not repeated.
	 */
	function announce(record, sender) {
		if (record.said) return;
		record.said = true;
		var text = record.content.textContent.trim();
		var note = record.meta.querySelector('.stopped-label');
		if (note) text += ' ' + note.textContent;
		ui.announcer.textContent = sender ? S.format(S.said, { name: sender, text: text }) : text;
	}

	function drawAdminName(record, frame) {
		if (record.nameEl) return;
		var name = (frame.metadata && frame.metadata.admin_name) || S.person;
		record.nameEl = el('div', 'sender-name', name);
		record.el.insertBefore(record.nameEl, record.bubble);
	}

	function setMeta(record, frame, extra) {
		var parts = [];
		if (record.sender === 'ai' && frame.model_id) {
			var who = el('span', 'model-name', S.format(S.answeredBy, { name: modelName(frame.model_id) }));
			record.el.dataset.modelId = frame.model_id;
			parts.push(who);
			if (frame.metadata && frame.metadata.fallback_from) {
				parts.push(el('span', null, S.format(S.fallbackFrom, { name: modelName(frame.metadata.fallback_from) })));
			}
		}
		parts.push(el('time', null, timeOf(frame)));
		if (extra) parts = parts.concat(extra);
		record.meta.replaceChildren.apply(record.meta, parts);
	}

	// Answers (streaming)

	var renderQueue = new Set();
	var renderFrame = 0;

	function scheduleRender(record) {
		renderQueue.add(record);
		if (!renderFrame) renderFrame = requestAnimationFrame(flushRender);
	}

	function flushRender() {
		renderFrame = 0;
		var stick = nearBottom();
		renderQueue.forEach((record) => {
			setText(record, record.text);
		});
		renderQueue.clear();
		if (stick) scrollToBottom();
	}

	function setStreaming(record, on) {
		if (on) {
			record.el.dataset.streaming = 'true';
			state.streaming.add(record);
		} else {
			delete record.el.dataset.streaming;
			state.streaming.delete(record);
		}
		updateStreaming();
	}

	function updateStreaming() {
		var busy = state.streaming.size > 0;
		ui.messageList.setAttribute('aria-busy', busy ? 'true' : 'false');
		ui.stopButton.hidden = !busy || state.readOnly;
	}

	function endAllStreaming() {
		state.streaming.forEach((record) => {
			delete record.el.dataset.streaming;
		});
		state.streaming.clear();
		updateStreaming();
	}

	function thinking(record) {
		var dots = el('div', 'dots');
		dots.setAttribute('role', 'img');
		dots.setAttribute('aria-label', S.thinking);
		dots.appendChild(el('span'));
		dots.appendChild(el('span'));
		dots.appendChild(el('span'));
		record.content.replaceChildren(dots);
	}

	/**
	 * Shows (or, with no text, hides) what the assistant is doing besides
	 * writing: an agent at work ('working'), or an answer waiting for a
	 * worker ('queued'). Each kind has its own element.
	 */
	function setWorking(record, text, kind) {
		kind = kind || 'working';
		if (record.working && (!text || record.working.dataset.kind !== kind)) {
			record.working.remove();
			record.working = null;
		}
		if (!text) return;
		if (!record.working) {
			record.working = el('p', 'working-status');
			record.working.dataset.kind = kind;
			record.working.setAttribute('data-testid', kind + '-status');
			record.working.setAttribute('role', 'status');
			record.bubble.appendChild(record.working);
		}
		record.working.textContent = text;
	}

	// The gateway has the message in the session's queue (durable) and the
	// answer is on its way, though no worker has started it yet. The echo
	// and the worker's own loading frame follow; they may also come first.
	function onQueued(frame) {
		var mine = frame.id && state.records.get(frame.id);
		if (mine && mine.el.classList.contains('pending')) {
			// Kept in the outbox until the echo: sent again after a reconnect,
			// the same id is accepted once.
			mine.el.classList.remove('pending', 'failed');
			setMeta(mine, {}, [el('span', 'queued-label', S.queued)]);
		}
		if (state.records.get(frame.message_id) || aliases.get(frame.message_id)) return;
		var answer = createRecord(frame.message_id, 'ai', null);
		aliases.set(frame.message_id, answer);
		thinking(answer);
		setStreaming(answer, true);
		setWorking(answer, S.waitingForAssistant, 'queued');
		if (nearBottom()) scrollToBottom();
	}

	function onLoading(frame) {
		var meta = frame.metadata || {};
		var active = meta.active !== 'false';
		var record = findRecord(frame);
		if (active && meta.status === 'working') {
			// An agent at work (a tool call): the text so far stays.
			if (!record) {
				record = createRecord(frame.message_id, 'ai', null);
				aliases.set(frame.message_id, record);
				thinking(record);
			} else if (record.done) {
				return;
			}
			setStreaming(record, true);
			setWorking(record, meta.tool ? S.format(S.workingTool, { tool: meta.tool }) : S.working);
			if (nearBottom()) scrollToBottom();
			return;
		}
		if (record) setWorking(record, null);
		if (active) {
			if (!record) {
				record = createRecord(frame.message_id, 'ai', null);
				aliases.set(frame.message_id, record);
			} else if (record.done) {
				return;
			}
			// Starting over (another worker took over): drop the partial text.
			record.text = '';
			renderQueue.delete(record);
			thinking(record);
			setStreaming(record, true);
			if (nearBottom()) scrollToBottom();
		} else if (record && !record.done) {
			setStreaming(record, false);
			if (!record.text) {
				// Stopped (or failed) before any text: nothing is kept.
				record.el.remove();
				state.records.delete(record.key);
				aliases.delete(frame.message_id);
				ui.emptyState.hidden = ui.messageList.children.length > 0;
			}
		}
	}

	function drawAnswer(record, frame) {
		var meta = frame.metadata || {};
		if (!frame.done) {
			if (record.done) return;
			// A replacing chunk carries the whole answer (the provider rewrote it).
			if (meta.replace === 'true') record.text = frame.content || '';
			else record.text += frame.content || '';
			setWorking(record, null);
			setStreaming(record, true);
			scheduleRender(record);
			return;
		}
		record.done = true;
		renderQueue.delete(record);
		setWorking(record, null);
		setStreaming(record, false);
		setText(record, frame.content || '');
		var reason = meta.finish_reason;
		var extra = [];
		if (reason && reason !== 'complete') {
			record.el.dataset.finishReason = reason;
			var note = el('span', 'stopped-label', S.finishNotes[reason] || S.endedEarly);
			note.setAttribute('data-testid', 'finish-note');
			extra.push(note);
		}
		setMeta(record, frame, extra);
		scheduleSessionsRefresh();
	}

	// Files

	function isImage(type) {
		return /^image\/(png|jpe?g|gif|webp|avif|bmp)$/.test(type || '');
	}

	function drawFile(record, frame) {
		var meta = frame.metadata || {};
		var name = meta.file_name || S.download;
		var type = meta.content_type || '';
		var parts = [];
		var box = el('div', 'attachment');
		if (frame.type === 'voice_message') {
			var audio = el('audio', 'voice-player');
			audio.setAttribute('data-testid', 'voice-player');
			audio.controls = true;
			audio.preload = 'metadata';
			audio.setAttribute('aria-label', S.voiceMessage);
			if (frame.file_url) audio.src = frame.file_url;
			box.appendChild(audio);
			if (meta.transcription === 'ok' && frame.content) {
				var transcript = el('p', 'transcript', frame.content);
				transcript.setAttribute('data-testid', 'transcript');
				box.appendChild(transcript);
			} else if (meta.transcription === 'failed' || meta.transcription === 'unavailable') {
				box.appendChild(el('p', 'transcript-note', meta.transcription === 'failed' ? S.transcriptFailed : S.transcriptUnavailable));
			}
		} else {
			if (isImage(type) && frame.file_url) {
				var open = el('button', 'thumb-button');
				open.type = 'button';
				open.setAttribute('aria-label', S.format(S.openImage, { name: name }));
				var img = el('img');
				img.setAttribute('data-testid', 'image-thumbnail');
				img.alt = name;
				img.src = frame.file_url;
				img.loading = 'lazy';
				open.appendChild(img);
				open.addEventListener('click', () => {
					openViewer(frame.file_url, name, open);
				});
				box.appendChild(open);
				box.appendChild(downloadLink(frame.file_url, name, S.download));
			} else {
				var chip = el('div', 'file-chip');
				chip.setAttribute('data-testid', 'file-chip');
				chip.appendChild(icon('M6 2h8l6 6v14H6zm7 1.5V9h5.5z'));
				var info = el('div', 'file-info');
				info.appendChild(el('span', 'file-name', name));
				info.appendChild(el('span', 'file-size', Uploads.formatSize(meta.file_size)));
				chip.appendChild(info);
				if (frame.file_url) chip.appendChild(downloadLink(frame.file_url, name, S.download));
				box.appendChild(chip);
			}
		}
		parts.push(box);
		if (frame.type === 'file_upload' && frame.content) {
			var caption = el('div', 'caption');
			caption.appendChild(window.ChatboxMarkdown.render(frame.content));
			parts.push(caption);
		}
		record.content.replaceChildren.apply(record.content, parts);
	}

	function downloadLink(href, name, text) {
		var a = el('a', 'download-link', text);
		a.setAttribute('data-testid', 'download-link');
		a.href = href;
		a.download = name;
		a.rel = 'noopener noreferrer';
		a.target = '_blank';
		a.setAttribute('aria-label', S.format(S.downloadName, { name: name }));
		return a;
	}

	/** A 24×24 icon of one SVG path. */
	function icon(d) {
		var ns = 'http://www.w3.org/2000/svg';
		var svg = document.createElementNS(ns, 'svg');
		svg.setAttribute('viewBox', '0 0 24 24');
		svg.setAttribute('aria-hidden', 'true');
		var path = document.createElementNS(ns, 'path');
		path.setAttribute('d', d);
		svg.appendChild(path);
		return svg;
	}

	/** The card of an upload in progress (or failed). */
	function drawUpload(job) {
		var record = state.records.get(job.sendId);
		if (!record) {
			if (job.state === 'done') return;
			record = createRecord(job.sendId, 'user', null);
			record.job = job;
			record.el.classList.add('pending');
			var box = el('div', 'attachment');
			if (job.localUrl) {
				var preview = el('img', 'thumb-preview');
				preview.alt = job.name;
				preview.src = job.localUrl;
				var wrap = el('div', 'thumb-button');
				wrap.appendChild(preview);
				box.appendChild(wrap);
			}
			record.label = el('span', 'file-name', job.purpose === 'voice' ? S.sendingVoice : S.format(S.uploading, { name: job.name }));
			box.appendChild(record.label);
			record.progress = el('progress', 'upload-progress');
			record.progress.setAttribute('data-testid', 'upload-progress');
			record.progress.max = 1;
			record.progress.value = 0;
			record.progress.setAttribute('aria-label', record.label.textContent);
			box.appendChild(record.progress);
			record.content.replaceChildren(box);
			setMeta(record, {}, [el('span', null, S.pending)]);
			scrollToBottom();
		}
		if (!record.job) return; // already echoed
		if (record.progress) record.progress.value = job.progress;
		if (job.state === 'failed') {
			record.el.classList.remove('pending');
			record.el.classList.add('failed');
			record.el.dataset.errorCode = (job.error && job.error.code) || '';
			if (record.progress) record.progress.remove();
			record.progress = null;
			var why = el('p', 'upload-error', job.error && job.error.message);
			why.setAttribute('role', 'alert');
			record.content.firstChild.appendChild(why);
			setMeta(record, {}, [el('span', 'error-label', S.failed)]);
		}
	}

	function startUpload(file, options) {
		if (state.readOnly) return;
		uploads.start(file, options);
	}

	// Image viewer

	var viewerOpener = null;

	function openViewer(src, name, opener) {
		viewerOpener = opener;
		ui.viewerImage.src = src;
		ui.viewerImage.alt = name;
		ui.viewer.hidden = false;
		ui.viewerClose.focus();
	}

	function closeViewer() {
		if (ui.viewer.hidden) return;
		ui.viewer.hidden = true;
		ui.viewerImage.removeAttribute('src');
		if (viewerOpener) viewerOpener.focus();
	}

	ui.viewerClose.addEventListener('click', closeViewer);
	ui.viewer.addEventListener('click', (e) => {
		if (e.target === ui.viewer) closeViewer();
	});
	ui.viewer.addEventListener('keydown', (e) => {
		if (e.key === 'Tab') {
			e.preventDefault();
			ui.viewerClose.focus();
		}
	});

	// History

	function loadHistory(sessionId, cursor, acc) {
		var id = newId('g');
		var metadata = { limit: '100' };
		if (cursor) metadata.cursor = cursor;
		state.requests.set(id, { kind: 'history', sessionId: sessionId, messages: acc || [], pages: acc ? 2 : 1 });
		if (!send({ type: 'get_history', id: id, session_id: sessionId, metadata: metadata })) state.requests.delete(id);
	}

	function onHistory(frame) {
		var request = state.requests.get(frame.id);
		if (!request) return;
		state.requests.delete(frame.id);
		var data = frame.data || {};
		var messages = request.messages.concat(data.messages || []);
		if (data.next_cursor && request.pages < 50) {
			loadHistory(request.sessionId, data.next_cursor, messages);
			return;
		}
		if (request.sessionId !== state.viewing) return;
		var echoed = new Set();
		if (!state.readOnly) setAssisting(null);
		messages.forEach((message) => {
			if (message.id) echoed.add(message.id);
			upsert(message, true);
		});
		ui.emptyState.hidden = ui.messageList.children.length > 0;
		scrollToBottom();
		if (!state.readOnly && request.sessionId === state.sessionId) {
			// Messages sent but not echoed: again, with the same id.
			state.outbox.forEach((pending, id) => {
				if (echoed.has(id)) state.outbox.delete(id);
				else send(pending);
			});
			uploads.resend(echoed);
		}
	}

	// Sending

	// Sends the composer's text, or `again` (a question the model could not
	// answer: it was accepted, so it goes again as a new message — the
	// server takes each id once).
	function sendText(again) {
		var typed = typeof again !== 'string';
		var text = typed ? ui.composerInput.value.replace(/\s+$/, '') : again;
		if (!text.trim() || state.readOnly || Date.now() < state.rateLimitedUntil) return;
		var id = newId('c');
		var frame = { type: 'user_message', id: id, content: text };
		var record = createRecord(id, 'user', null);
		record.el.dataset.clientId = id;
		record.el.classList.add('pending');
		setText(record, text);
		setMeta(record, {}, [el('span', 'pending-label', S.pending)]);
		state.outbox.set(id, frame);
		state.sent.set(id, frame);
		send(frame);
		if (typed) {
			ui.composerInput.value = '';
			autosize();
		}
		scrollToBottom();
	}

	function resend(id) {
		var frame = state.sent.get(id);
		if (!frame) return;
		state.outbox.set(id, frame);
		var record = state.records.get(id);
		if (record && record.el.classList.contains('failed')) {
			record.el.classList.remove('failed');
			record.el.classList.add('pending');
			setMeta(record, {}, [el('span', 'pending-label', S.pending)]);
		}
		hideError();
		send(frame);
	}

	ui.composer.addEventListener('submit', (e) => {
		e.preventDefault();
		sendText();
	});

	ui.composerInput.addEventListener('keydown', (e) => {
		if (e.key === 'Enter' && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
			e.preventDefault();
			sendText();
		}
	});

	function autosize() {
		ui.composerInput.style.height = 'auto';
		ui.composerInput.style.height = Math.min(ui.composerInput.scrollHeight + 2, window.innerHeight * 0.4) + 'px';
	}

	ui.composerInput.addEventListener('input', () => {
		autosize();
		updateComposer();
		var now = Date.now();
		if (ui.composerInput.value && !state.readOnly && now - state.lastTypingSent >= 2000) {
			state.lastTypingSent = now;
			send({ type: 'typing_indicator', metadata: { active: 'true' } });
		}
	});

	ui.stopButton.addEventListener('click', () => {
		send({ type: 'stop' });
		ui.composerInput.focus();
	});

	function updateComposer() {
		var limited = Date.now() < state.rateLimitedUntil;
		ui.sendButton.disabled = state.readOnly || limited || !ui.composerInput.value.trim();
		ui.composerInput.disabled = state.readOnly;
		ui.attachButton.disabled = state.readOnly;
		ui.recordButton.disabled = state.readOnly || limited;
		ui.helpButton.disabled = state.readOnly;
		ui.modelSelect.disabled = state.readOnly || state.models.length < 2;
		ui.composerInput.placeholder = state.readOnly ? S.composerPlaceholderReadOnly : S.composerPlaceholder;
	}

	// Files in

	ui.attachButton.addEventListener('click', () => {
		ui.fileInput.click();
	});

	ui.fileInput.addEventListener('change', () => {
		takeFiles(ui.fileInput.files);
		ui.fileInput.value = '';
	});

	function takeFiles(files) {
		if (!files || !files.length || state.readOnly) return;
		var caption = ui.composerInput.value.trim();
		Array.prototype.forEach.call(files, (file, i) => {
			startUpload(file, { purpose: 'file', caption: i === 0 ? caption : '' });
		});
		if (caption) {
			ui.composerInput.value = '';
			autosize();
			updateComposer();
		}
	}

	var dragDepth = 0;
	function hasFiles(e) {
		return e.dataTransfer && Array.prototype.indexOf.call(e.dataTransfer.types || [], 'Files') >= 0;
	}
	ui.conversation.addEventListener('dragenter', (e) => {
		if (!hasFiles(e) || state.readOnly) return;
		e.preventDefault();
		dragDepth++;
		ui.conversation.classList.add('dragging');
		ui.dropHint.hidden = false;
	});
	ui.conversation.addEventListener('dragover', (e) => {
		if (!hasFiles(e) || state.readOnly) return;
		e.preventDefault();
		e.dataTransfer.dropEffect = 'copy';
	});
	ui.conversation.addEventListener('dragleave', () => {
		dragDepth = Math.max(0, dragDepth - 1);
		if (!dragDepth) {
			ui.conversation.classList.remove('dragging');
			ui.dropHint.hidden = true;
		}
	});
	ui.conversation.addEventListener('drop', (e) => {
		if (!hasFiles(e)) return;
		e.preventDefault();
		dragDepth = 0;
		ui.conversation.classList.remove('dragging');
		ui.dropHint.hidden = true;
		takeFiles(e.dataTransfer.files);
	});

	// Voice

	var flashTimer = null;
	function flash(text) {
		clearTimeout(flashTimer);
		ui.typing.textContent = text;
		flashTimer = setTimeout(() => {
			if (ui.typing.textContent === text) ui.typing.textContent = '';
		}, 3000);
	}

	new window.ChatboxRecorder(ui.recordButton, ui.levelMeter, {
		onRecorded: (blob, type, name) => {
			startUpload(blob, { purpose: 'voice', name: name });
		},
		onState: (s) => {
			ui.recordHint.textContent = s === 'cancel' ? S.recordingCancelArmed : S.recording;
			ui.levelMeter.dataset.cancel = s === 'cancel' ? 'true' : 'false';
			ui.recordButton.setAttribute('aria-label', s === 'idle' ? S.record : S.recording);
		},
		onError: (message, level) => {
			if (level === 'error') showError('MICROPHONE', message, null);
			else flash(message);
		},
	});

	// People

	ui.helpButton.addEventListener('click', () => {
		if (state.readOnly) return;
		var id = newId('h');
		var frame = { type: 'help_request', id: id, content: S.helpContent };
		state.outbox.set(id, frame);
		state.sent.set(id, frame);
		send(frame);
	});

	function setAssisting(name) {
		state.assisting = name;
		ui.assistBanner.hidden = !name;
		ui.assistBanner.textContent = name ? S.format(S.assistedBy, { name: name }) : '';
		if (!name) ui.typing.textContent = '';
	}

	var typingTimer = null;
	function onTyping(frame) {
		if (frame.sender !== 'admin' || (frame.session_id && frame.session_id !== state.viewing)) return;
		clearTimeout(typingTimer);
		var active = !frame.metadata || frame.metadata.active !== 'false';
		var name = (frame.metadata && frame.metadata.admin_name) || state.assisting || S.someone;
		ui.typing.textContent = active ? S.format(S.isTyping, { name: name }) : '';
		if (active) {
			typingTimer = setTimeout(() => {
				ui.typing.textContent = '';
			}, 5000);
		}
	}

	// Models

	function setModels(models, selected) {
		state.models = models || [];
		if (selected) state.modelId = selected;
		ui.modelSelect.replaceChildren();
		state.models.forEach((m) => {
			var option = el('option', null, m.name || m.id);
			option.value = m.id;
			ui.modelSelect.appendChild(option);
		});
		if (state.modelId) ui.modelSelect.value = state.modelId;
		ui.modelSelect.disabled = state.models.length < 2;
		// One model: nothing to choose, so no picker taking room in the header.
		ui.modelLabel.hidden = state.models.length < 2;
	}

	ui.modelSelect.addEventListener('change', () => {
		var wanted = ui.modelSelect.value;
		if (!send({ type: 'model_select', id: newId('m'), model_id: wanted })) ui.modelSelect.value = state.modelId || '';
	});

	function onModelSelected(frame) {
		state.modelId = frame.model_id;
		ui.modelSelect.value = frame.model_id;
		flash(S.format(S.modelChanged, { name: frame.content || modelName(frame.model_id) }));
	}

	// Errors

	function friendly(code, message) {
		var text = S.errors[code];
		if (!text) return message || S.errorGeneric;
		if (message && S.detailCodes.indexOf(code) >= 0) {
			text += ' ' + message.charAt(0).toUpperCase() + message.slice(1) + (/[.!?]$/.test(message) ? '' : '.');
		}
		return text;
	}

	var limitTimer = null;

	function onError(frame) {
		var error = frame.error || {};
		var code = error.code || 'INTERNAL_ERROR';
		var text = friendly(code, error.message);
		if (uploads.onError(frame, text)) {
			showError(code, text, null);
			return;
		}
		var record = frame.id && state.records.get(frame.id);
		var canRetry = frame.id && state.sent.has(frame.id);
		if (frame.id) state.outbox.delete(frame.id);
		if (record && record.el.classList.contains('pending')) {
			record.el.classList.remove('pending');
			record.el.classList.add('failed');
			var extra = [el('span', 'error-label', S.failed)];
			if (canRetry) {
				var again = el('button', 'retry-button', S.retry);
				again.type = 'button';
				again.addEventListener('click', () => {
					resend(frame.id);
				});
				extra.push(again);
			}
			setMeta(record, {}, extra);
		}
		if (code === 'RATE_LIMITED') {
			var wait = Number(error.retry_after) || 5000;
			state.rateLimitedUntil = Date.now() + wait;
			clearInterval(limitTimer);
			var tick = () => {
				var left = Math.ceil((state.rateLimitedUntil - Date.now()) / 1000);
				if (left <= 0) {
					clearInterval(limitTimer);
					hideError();
					updateComposer();
					return;
				}
				showError(code, text, null, S.format(S.waitSeconds, { seconds: left }));
			};
			tick();
			limitTimer = setInterval(tick, 250);
			updateComposer();
			return;
		}
		var action = null;
		var accepted = record && !record.el.classList.contains('failed');
		if (code === 'LLM_UNAVAILABLE' && canRetry && accepted) {
			action = {
				label: S.retry,
				after: Number(error.retry_after) || 0,
				run: () => {
					hideError();
					sendText(state.sent.get(frame.id).content);
				},
			};
		} else if ((code === 'SERVICE_UNAVAILABLE' || code === 'LLM_UNAVAILABLE' || code === 'INTERNAL_ERROR') && canRetry) {
			action = {
				label: S.retry,
				after: Number(error.retry_after) || 0,
				run: () => {
					resend(frame.id);
				},
			};
		} else if (code === 'SESSION_ENDED') {
			action = { label: S.startNewChat, run: newChat };
		}
		showError(code, text, action);
	}

	var retryTimer = null;
	/** The error banner (an alert): `text` is said once, `countdown` ticks on screen only. */
	function showError(code, text, action, countdown) {
		ui.errorBanner.dataset.code = code;
		say(ui.errorText, text);
		say(ui.errorCountdown, countdown || '');
		ui.errorAction.hidden = !action;
		clearTimeout(retryTimer);
		if (action) {
			ui.errorAction.textContent = action.label;
			ui.errorAction.onclick = action.run;
			ui.errorAction.disabled = action.after > 0;
			if (action.after > 0) {
				retryTimer = setTimeout(() => {
					ui.errorAction.disabled = false;
				}, action.after);
			}
		}
		ui.errorBanner.hidden = false;
	}

	function hideError() {
		ui.errorBanner.hidden = true;
	}

	ui.errorClose.addEventListener('click', hideError);

	// Sessions

	var sessionsTimer = null;
	function scheduleSessionsRefresh() {
		clearTimeout(sessionsTimer);
		sessionsTimer = setTimeout(listSessions, 400);
	}

	function listSessions(cursor) {
		var id = newId('l');
		var metadata = { limit: '30' };
		if (cursor) metadata.cursor = cursor;
		state.requests.set(id, { kind: 'sessions', append: !!cursor });
		if (!send({ type: 'list_sessions', id: id, metadata: metadata })) state.requests.delete(id);
	}

	function onSessionList(frame) {
		var request = state.requests.get(frame.id);
		state.requests.delete(frame.id);
		var data = frame.data || {};
		var list = data.sessions || [];
		if (request && request.append) {
			var known = new Set(
				state.sessions.map((s) => s.session_id)
			);
			state.sessions = state.sessions.concat(
				list.filter((s) => !known.has(s.session_id))
			);
		} else {
			state.sessions = list;
		}
		state.sessionsCursor = data.next_cursor || null;
		drawSessions();
		updateTitle();
	}

	function onSessionRenamed(frame) {
		var updated = frame.data || {};
		var id = updated.session_id || frame.session_id;
		var found = false;
		state.sessions.forEach((s, i) => {
			if (s.session_id === id) {
				state.sessions[i] = Object.assign({}, s, updated, { name: frame.content || updated.name });
				found = true;
			}
		});
		if (!found) listSessions();
		drawSessions();
		updateTitle();
	}

	function relativeTime(iso) {
		var t = new Date(iso).getTime();
		if (isNaN(t)) return '';
		var minutes = Math.round((Date.now() - t) / 60000);
		if (minutes < 1) return S.justNow;
		if (minutes < 60) return S.format(S.minutesAgo, { n: minutes });
		if (minutes < 24 * 60) return S.format(S.hoursAgo, { n: Math.round(minutes / 60) });
		return new Date(t).toLocaleDateString([], { month: 'short', day: 'numeric' });
	}

	function drawSessions() {
		var sessions = state.sessions.slice().sort((a, b) => String(b.last_activity || '').localeCompare(String(a.last_activity || '')));
		var focused = document.activeElement && ui.sessionList.contains(document.activeElement);
		var focusId = focused && document.activeElement.closest('.session-item') && document.activeElement.closest('.session-item').dataset.sessionId;
		ui.sessionList.replaceChildren();
		sessions.forEach((s) => {
			var li = el('li', 'session-item');
			li.setAttribute('data-testid', 'session-item');
			li.dataset.sessionId = s.session_id;
			if (s.session_id === state.viewing) li.setAttribute('aria-current', 'true');
			var open = el('button', 'session-open');
			open.type = 'button';
			open.appendChild(el('span', 'session-name', s.name || S.untitled));
			var meta = el('span', 'session-meta');
			var live = s.session_id === state.sessionId && s.is_active;
			if (live) meta.appendChild(el('span', 'live', S.current));
			else meta.textContent = (s.is_active ? '' : S.ended + ' · ') + relativeTime(s.last_activity);
			open.appendChild(meta);
			open.addEventListener('click', () => {
				openSession(s);
			});
			var rename = el('button', 'icon-button small rename-button');
			rename.type = 'button';
			rename.setAttribute('data-testid', 'rename-button');
			rename.setAttribute('aria-label', S.rename + ': ' + (s.name || S.untitled));
			rename.title = S.rename;
			rename.appendChild(icon('M3 17.2V21h3.8l11-11-3.8-3.8zM20.7 7a1 1 0 0 0 0-1.4l-2.3-2.3a1 1 0 0 0-1.4 0l-1.8 1.8 3.8 3.8z'));
			rename.addEventListener('click', () => {
				startRename(li, s);
			});
			li.appendChild(open);
			li.appendChild(rename);
			ui.sessionList.appendChild(li);
			if (focusId === s.session_id) open.focus();
		});
		ui.sessionEmpty.hidden = sessions.length > 0;
		ui.moreSessions.hidden = !state.sessionsCursor;
	}

	ui.moreSessions.addEventListener('click', () => {
		if (state.sessionsCursor) listSessions(state.sessionsCursor);
	});

	function startRename(li, session) {
		var form = el('form', 'session-rename-form');
		var input = el('input');
		input.type = 'text';
		input.maxLength = 100;
		input.value = session.name || '';
		input.setAttribute('aria-label', S.renameLabel);
		var save = el('button', 'icon-button small');
		save.type = 'submit';
		save.setAttribute('aria-label', S.renameSave);
		save.title = S.renameSave;
		save.appendChild(icon('M9 16.2 4.8 12l-1.4 1.4L9 19 21 7l-1.4-1.4z'));
		form.appendChild(input);
		form.appendChild(save);
		li.replaceChildren(form);
		input.focus();
		input.select();
		var finished = false;
		var finish = (commit) => {
			if (finished) return;
			finished = true;
			var name = input.value.replace(/\s+/g, ' ').trim().slice(0, 100);
			if (commit && name && name !== session.name) {
				send({ type: 'rename_session', id: newId('r'), session_id: session.session_id, content: name });
				session.name = name;
			}
			drawSessions();
		};
		form.addEventListener('submit', (e) => {
			e.preventDefault();
			finish(true);
		});
		input.addEventListener('keydown', (e) => {
			if (e.key === 'Escape') {
				e.preventDefault();
				e.stopPropagation();
				finish(false);
			}
		});
		input.addEventListener('blur', () => {
			setTimeout(() => {
				if (!form.contains(document.activeElement)) finish(true);
			}, 0);
		});
	}

	function openSession(session) {
		closeDrawer();
		if (session.session_id === state.viewing) return;
		if (session.session_id === state.sessionId) {
			showCurrent();
			return;
		}
		if (session.is_active) {
			// The user's active session, on no socket of ours: resume it.
			setReadOnly(false);
			clearMessages();
			view(null);
			socket.connect({ sessionId: session.session_id });
			return;
		}
		setReadOnly(true);
		clearMessages();
		view(session.session_id);
		setAssisting(null);
		drawSessions();
		updateTitle();
		loadHistory(session.session_id);
	}

	function showCurrent() {
		setReadOnly(false);
		clearMessages();
		view(state.sessionId);
		drawSessions();
		updateTitle();
		if (state.sessionId) loadHistory(state.sessionId);
	}

	ui.backToCurrent.addEventListener('click', showCurrent);

	function setReadOnly(on) {
		state.readOnly = on;
		ui.readOnly.hidden = !on;
		ui.composer.hidden = on;
		updateStreaming();
		updateComposer();
	}

	function updateTitle() {
		var name = null;
		state.sessions.forEach((s) => {
			if (s.session_id === state.viewing) name = s.name;
		});
		ui.chatTitle.textContent = name || S.appName;
		document.title = name ? name + ' · ' + S.title : S.title;
	}

	function newChat() {
		closeDrawer();
		hideError();
		setReadOnly(false);
		clearMessages();
		state.outbox.clear();
		view(null);
		state.sessionId = null;
		setAssisting(null);
		updateTitle();
		if (state.token) socket.connect({ sessionId: null, newSession: true });
		ui.composerInput.focus();
	}

	ui.newChatButton.addEventListener('click', newChat);

	// Drawer (phones): a modal dialog. Focus moves in at once (the panel is
	// made visible before it slides in), Tab stays inside, the page behind
	// is inert, and closing gives focus back to the menu button.

	var desktop = window.matchMedia('(min-width: 900px)');

	function drawerOpen() {
		return ui.app.classList.contains('drawer-open');
	}

	function openDrawer() {
		ui.app.classList.add('drawer-open');
		ui.backdrop.hidden = false;
		ui.sidebar.setAttribute('role', 'dialog');
		ui.sidebar.setAttribute('aria-modal', 'true');
		ui.main.inert = true;
		ui.sessionsButton.setAttribute('aria-expanded', 'true');
		var first = ui.sessionList.querySelector('button') || ui.closeSessions;
		first.focus();
	}

	function closeDrawer() {
		if (!drawerOpen()) return;
		ui.app.classList.remove('drawer-open');
		ui.backdrop.hidden = true;
		ui.sidebar.setAttribute('role', 'complementary');
		ui.sidebar.removeAttribute('aria-modal');
		ui.main.inert = false;
		ui.sessionsButton.setAttribute('aria-expanded', 'false');
		if (!desktop.matches) ui.sessionsButton.focus();
	}

	/** Tab and Shift+Tab go round the open drawer's controls. */
	function keepFocusInDrawer(e) {
		var controls = Array.prototype.filter.call(
			ui.sidebar.querySelectorAll('button, input, a[href], [tabindex]:not([tabindex="-1"])'),
			(node) => !node.disabled && node.getClientRects().length > 0
		);
		if (!controls.length) return;
		var first = controls[0];
		var last = controls[controls.length - 1];
		var inside = ui.sidebar.contains(document.activeElement);
		if (e.shiftKey && (document.activeElement === first || !inside)) {
			e.preventDefault();
			last.focus();
		} else if (!e.shiftKey && (document.activeElement === last || !inside)) {
			e.preventDefault();
			first.focus();
		}
	}

	ui.sessionsButton.addEventListener('click', openDrawer);
	ui.closeSessions.addEventListener('click', closeDrawer);
	ui.backdrop.addEventListener('click', closeDrawer);
	desktop.addEventListener('change', closeDrawer);
	document.addEventListener('keydown', (e) => {
		if (e.key === 'Escape') {
			closeDrawer();
			closeViewer();
		} else if (e.key === 'Tab' && drawerOpen()) {
			keepFocusInDrawer(e);
		}
	});

	// Start

	updateComposer();
	updateStreaming();
	onConnState('connecting', {});
	var initial = tokenFromHash() || keptToken();
	if (initial) {
		useToken(initial);
	} else {
		onConnState('auth', {});
		showNotice(window.parent !== window ? S.waitingForToken : S.noToken, null);
		postToHost({ type: 'chatbox:ready' });
	}
})();
