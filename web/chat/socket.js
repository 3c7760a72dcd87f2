// socket.js — the chat page's WebSocket: connects to ../chat/ws with the
// token in the subprotocol list (["chatbox.v1", "bearer.<token>"]), sends
// the application ping every 30 s, and reconnects with backoff (1, 2, 4,
// 8, 16, then every 30 s) passing the session it had. It does not
// reconnect on 4001 (opened elsewhere) or 4003 (session ended), reconnects
// without session_id on 4004, stops on 4401 (its token expired: state
// "auth", the page asks the host for a new one), and when a socket never
// opens asks GET ../chat/models why (401 → the token is refused: state
// "auth"). reauth(token) hands an open socket a fresh token, so it
// outlives the one it opened with.
// API: new ChatboxSocket({onFrame, onState, onEnded, onAuthFailed}).
'use strict';

(function () {
	var DELAYS = [1, 2, 4, 8, 16];
	var STEADY_DELAY = 30;
	var PING_EVERY_MS = 30000;

	function ChatboxSocket(handlers) {
		this.handlers = handlers;
		this.token = null;
		this.sessionId = null; // the session to resume on the next connect
		this.newSession = false; // ask for a fresh session on the next connect
		this.ws = null;
		this.attempt = 0;
		this.retryTimer = null;
		this.pingTimer = null;
		this.stopped = true; // no (re)connecting until connect()
		this.online = false;
		var self = this;
		window.addEventListener('online', () => {
			if (!self.stopped && !self.online) self.reconnectNow();
		});
		window.addEventListener('offline', () => {
			if (!self.online) self.state('offline', { browserOffline: true });
		});
	}

	ChatboxSocket.prototype.state = function (name, info) {
		this.handlers.onState(name, info || {});
	};

	/** The ws(s) URL of ../chat/ws, relative to the page. */
	ChatboxSocket.prototype.url = function () {
		var url = new URL('../chat/ws', window.location.href);
		url.protocol = url.protocol === 'https:' ? 'wss:' : 'ws:';
		url.hash = '';
		url.search = '';
		if (this.newSession) url.searchParams.set('new_session', 'true');
		else if (this.sessionId) url.searchParams.set('session_id', this.sessionId);
		return url.href;
	};

	/** Starts (or restarts) connecting. `options`: {sessionId, newSession}. */
	ChatboxSocket.prototype.connect = function (options) {
		options = options || {};
		if ('sessionId' in options) this.sessionId = options.sessionId;
		this.newSession = !!options.newSession;
		this.stopped = false;
		this.attempt = 0;
		this.drop();
		this.open(false);
	};

	ChatboxSocket.prototype.open = function (retrying) {
		clearTimeout(this.retryTimer);
		this.retryTimer = null;
		if (!this.token) return;
		this.online = false;
		this.state(retrying ? 'reconnecting' : 'connecting');
		var ws;
		try {
			ws = new WebSocket(this.url(), ['chatbox.v1', 'bearer.' + this.token]);
		} catch (e) {
			this.schedule();
			return;
		}
		this.ws = ws;
		var self = this;
		var opened = false;
		ws.onopen = () => {
			opened = true;
			self.startPing();
		};
		ws.onmessage = (event) => {
			if (typeof event.data !== 'string') return;
			var frame;
			try {
				frame = JSON.parse(event.data);
			} catch (e) {
				return;
			}
			if (!frame || typeof frame !== 'object') return;
			// The answers to reauth are the socket's own business: a refused
			// token ends in a 4401 close at expiry, and the page asks again.
			if (frame.type === 'reauthenticated') return;
			if (frame.type === 'error' && typeof frame.id === 'string' && frame.id.indexOf('reauth-') === 0) return;
			if (frame.type === 'connection_status') {
				var status = frame.metadata && frame.metadata.status;
				if (status === 'connected') {
					self.online = true;
					self.attempt = 0;
					self.newSession = false;
					if (frame.session_id) self.sessionId = frame.session_id;
					self.state('online');
				}
			}
			self.handlers.onFrame(frame);
		};
		ws.onclose = (event) => {
			if (self.ws !== ws) return; // replaced on purpose
			self.ws = null;
			self.online = false;
			self.stopPing();
			if (self.stopped) return;
			self.closed(event.code, opened);
		};
		ws.onerror = () => {
			/* onclose follows and decides */
		};
	};

	ChatboxSocket.prototype.closed = function (code, opened) {
		if (code === 4001) {
			this.stopped = true;
			this.state('offline', { reason: 'elsewhere' });
			this.handlers.onEnded('elsewhere');
		} else if (code === 4003) {
			this.stopped = true;
			this.sessionId = null;
			this.state('offline', { reason: 'ended' });
			this.handlers.onEnded('ended');
		} else if (code === 4401) {
			this.stopped = true;
			this.state('auth');
			this.handlers.onAuthFailed('TOKEN_EXPIRED');
		} else if (code === 4004) {
			this.sessionId = null;
			this.handlers.onEnded('not_found');
			this.open(true);
		} else if (!opened) {
			this.probe();
		} else {
			this.schedule();
		}
	};

	/** The socket never opened: is it the token, or the network? */
	ChatboxSocket.prototype.probe = function () {
		var self = this;
		var token = this.token;
		this.state('reconnecting', { probing: true });
		fetch(new URL('../chat/models', window.location.href).href, {
			headers: { Authorization: 'Bearer ' + token },
			cache: 'no-store',
			credentials: 'same-origin',
		})
			.then((answer) => {
				if (self.stopped || token !== self.token) return;
				if (answer.status === 401) {
					return answer
						.json()
						.catch(() => {
							return {};
						})
						.then((body) => {
							self.stopped = true;
							self.state('auth');
							self.handlers.onAuthFailed((body && body.error && body.error.code) || 'INVALID_TOKEN');
						});
				}
				if (answer.status === 403) {
					return answer
						.json()
						.catch(() => {
							return {};
						})
						.then((body) => {
							var code = body && body.error && body.error.code;
							if (code === 'ORIGIN_NOT_ALLOWED' || code === 'FORBIDDEN') {
								self.stopped = true;
								self.state('offline', { code: code });
								self.handlers.onRefused(code);
							} else {
								self.schedule();
							}
						});
				}
				self.schedule();
			})
			.catch(() => {
				if (!self.stopped) self.schedule();
			});
	};

	ChatboxSocket.prototype.schedule = function () {
		if (this.stopped || this.retryTimer) return;
		var delay = this.attempt < DELAYS.length ? DELAYS[this.attempt] : STEADY_DELAY;
		this.attempt++;
		var self = this;
		this.state(navigator.onLine === false ? 'offline' : 'reconnecting', {
			retryAt: Date.now() + delay * 1000,
			browserOffline: navigator.onLine === false,
		});
		this.retryTimer = setTimeout(() => {
			self.retryTimer = null;
			self.open(true);
		}, delay * 1000);
	};

	ChatboxSocket.prototype.reconnectNow = function () {
		if (!this.token) return;
		this.stopped = false;
		this.drop();
		this.open(true);
	};

	ChatboxSocket.prototype.startPing = function () {
		var self = this;
		this.stopPing();
		this.pingTimer = setInterval(() => {
			self.send({ type: 'ping' });
		}, PING_EVERY_MS);
	};

	ChatboxSocket.prototype.stopPing = function () {
		clearInterval(this.pingTimer);
		this.pingTimer = null;
	};

	/** Closes the current socket without reconnecting from its close. */
	ChatboxSocket.prototype.drop = function () {
		clearTimeout(this.retryTimer);
		this.retryTimer = null;
		this.stopPing();
		var ws = this.ws;
		this.ws = null;
		this.online = false;
		if (ws) {
			ws.onclose = null;
			ws.onmessage = null;
			try {
				// 4000: not 1000, which would stop an answer as "user left".
				ws.close(4000, 'reconnecting');
			} catch (e) {
				/* already closed */
			}
		}
	};

	/** Stops for good (until connect()). */
	ChatboxSocket.prototype.stop = function () {
		this.stopped = true;
		this.drop();
	};

	/** Gives the open socket a fresh token (the next connect uses it too). */
	ChatboxSocket.prototype.reauth = function (token) {
		this.token = token;
		this.reauths = (this.reauths || 0) + 1;
		return this.send({ type: 'reauth', id: 'reauth-' + this.reauths, token: token });
	};

	/** Sends a frame if the session is open; false when it could not. */
	ChatboxSocket.prototype.send = function (frame) {
		if (!this.ws || this.ws.readyState !== WebSocket.OPEN || !this.online) return false;
		this.ws.send(JSON.stringify(frame));
		return true;
	};

	window.ChatboxSocket = ChatboxSocket;
})();
