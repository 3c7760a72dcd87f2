// recorder.js — hold-to-record voice messages. Press and hold the record
// button (pointer, or Space/Enter on the keyboard) to record with
// getUserMedia + MediaRecorder (audio/webm;codecs=opus when the browser
// has it), release to send, slide away from the button or press Escape to
// cancel. While recording, an AnalyserNode drives the level meter.
// API: new ChatboxRecorder(button, meter, {onRecorded(blob, type, name),
// onState(state), onError(message)}); state: idle|starting|recording|cancel.
'use strict';

(function () {
	var S = window.ChatboxStrings;
	var PREFERRED = ['audio/webm;codecs=opus', 'audio/webm', 'audio/ogg;codecs=opus', 'audio/mp4', 'audio/mpeg'];
	// Safari records MP4 (AAC inside); some versions label it audio/aac.
	var EXTENSIONS = { 'audio/webm': 'webm', 'audio/ogg': 'ogg', 'audio/mp4': 'm4a', 'audio/aac': 'm4a', 'audio/mpeg': 'mp3', 'audio/wav': 'wav' };
	var MIN_MS = 400;
	var SLIDE_CANCEL_PX = 48;

	function supported() {
		return !!(navigator.mediaDevices && navigator.mediaDevices.getUserMedia && window.MediaRecorder);
	}

	function ChatboxRecorder(button, meter, handlers) {
		this.button = button;
		this.meter = meter;
		this.bar = meter.querySelector('.level-bar');
		this.handlers = handlers;
		this.state = 'idle';
		this.stream = null;
		this.recorder = null;
		this.chunks = [];
		this.audio = null;
		this.releaseWanted = false;
		this.startedAt = 0;
		this.pointerId = null;
		this.frame = 0;
		if (!supported()) {
			button.hidden = true;
			return;
		}
		this.bind();
	}

	ChatboxRecorder.supported = supported;

	ChatboxRecorder.prototype.setState = function (state) {
		this.state = state;
		this.button.dataset.state = state;
		this.button.setAttribute('aria-pressed', state === 'recording' || state === 'cancel' ? 'true' : 'false');
		this.meter.hidden = !(state === 'recording' || state === 'cancel' || state === 'starting');
		this.handlers.onState(state);
	};

	ChatboxRecorder.prototype.bind = function () {
		var self = this;
		var b = this.button;
		b.addEventListener('contextmenu', (e) => {
			e.preventDefault();
		});
		b.addEventListener('pointerdown', (e) => {
			if (e.button !== 0 || self.state !== 'idle' || b.disabled) return;
			e.preventDefault();
			self.pointerId = e.pointerId;
			try {
				b.setPointerCapture(e.pointerId);
			} catch (err) {
				/* capture is a nicety */
			}
			self.begin();
		});
		b.addEventListener('pointermove', (e) => {
			if (e.pointerId !== self.pointerId || self.state === 'idle') return;
			var r = b.getBoundingClientRect();
			var away =
				e.clientX < r.left - SLIDE_CANCEL_PX ||
				e.clientX > r.right + SLIDE_CANCEL_PX ||
				e.clientY < r.top - SLIDE_CANCEL_PX ||
				e.clientY > r.bottom + SLIDE_CANCEL_PX;
			if (away && self.state === 'recording') self.setState('cancel');
			else if (!away && self.state === 'cancel') self.setState('recording');
		});
		b.addEventListener('pointerup', (e) => {
			if (e.pointerId !== self.pointerId) return;
			self.pointerId = null;
			self.release(self.state === 'cancel');
		});
		b.addEventListener('pointercancel', (e) => {
			if (e.pointerId !== self.pointerId) return;
			self.pointerId = null;
			self.release(true);
		});
		b.addEventListener('keydown', (e) => {
			if (e.key === ' ' || e.key === 'Enter') {
				e.preventDefault();
				if (!e.repeat && self.state === 'idle' && !b.disabled) self.begin();
			} else if (e.key === 'Escape' && self.state !== 'idle') {
				e.preventDefault();
				self.release(true);
			}
		});
		b.addEventListener('keyup', (e) => {
			if ((e.key === ' ' || e.key === 'Enter') && self.pointerId === null && self.state !== 'idle') {
				e.preventDefault();
				self.release(false);
			}
		});
		b.addEventListener('blur', () => {
			if (self.state !== 'idle' && self.pointerId === null) self.release(true);
		});
		document.addEventListener('keydown', (e) => {
			if (e.key === 'Escape' && self.state !== 'idle') self.release(true);
		});
	};

	ChatboxRecorder.prototype.begin = function () {
		var self = this;
		this.releaseWanted = false;
		this.cancelWanted = false;
		this.setState('starting');
		navigator.mediaDevices
			.getUserMedia({ audio: { echoCancellation: true, noiseSuppression: true } })
			.then((stream) => {
				self.stream = stream;
				if (self.releaseWanted) {
					self.cleanup();
					self.setState('idle');
					self.handlers.onError(self.cancelWanted ? S.recordCancelled : S.recordTooShort, 'info');
					return;
				}
				var type = '';
				for (var i = 0; i < PREFERRED.length; i++) {
					if (MediaRecorder.isTypeSupported && MediaRecorder.isTypeSupported(PREFERRED[i])) {
						type = PREFERRED[i];
						break;
					}
				}
				self.chunks = [];
				self.recorder = type ? new MediaRecorder(stream, { mimeType: type }) : new MediaRecorder(stream);
				self.recorder.ondataavailable = (e) => {
					if (e.data && e.data.size) self.chunks.push(e.data);
				};
				self.recorder.start(250);
				self.startedAt = Date.now();
				self.meterStart(stream);
				if (self.state === 'starting') self.setState('recording');
			})
			.catch(() => {
				self.cleanup();
				self.setState('idle');
				self.handlers.onError(S.micDenied, 'error');
			});
	};

	/** Released: send, or throw the recording away. */
	ChatboxRecorder.prototype.release = function (cancel) {
		if (this.state === 'starting') {
			this.releaseWanted = true;
			this.cancelWanted = cancel;
			return;
		}
		if (this.state === 'idle' || !this.recorder) return;
		var self = this;
		var recorder = this.recorder;
		var tooShort = Date.now() - this.startedAt < MIN_MS;
		recorder.onstop = () => {
			var type = recorder.mimeType || (self.chunks[0] && self.chunks[0].type) || 'audio/webm';
			var base = window.ChatboxUploads.baseType(type);
			var blob = new Blob(self.chunks, { type: base });
			self.chunks = [];
			self.cleanup();
			self.setState('idle');
			if (cancel) {
				self.handlers.onError(S.recordCancelled, 'info');
			} else if (tooShort || !blob.size) {
				self.handlers.onError(S.recordTooShort, 'info');
			} else {
				var stamp = new Date().toISOString().replace(/[-:]/g, '').replace(/\..*$/, '');
				self.handlers.onRecorded(blob, base, 'voice-' + stamp + '.' + (EXTENSIONS[base] || 'webm'));
			}
		};
		try {
			recorder.stop();
		} catch (e) {
			recorder.onstop();
		}
	};

	ChatboxRecorder.prototype.meterStart = function (stream) {
		var Ctx = window.AudioContext || window.webkitAudioContext;
		if (!Ctx) return;
		try {
			var ctx = new Ctx();
			var source = ctx.createMediaStreamSource(stream);
			var analyser = ctx.createAnalyser();
			analyser.fftSize = 512;
			source.connect(analyser);
			var samples = new Uint8Array(analyser.fftSize);
			this.audio = ctx;
			var self = this;
			var tick = () => {
				analyser.getByteTimeDomainData(samples);
				var sum = 0;
				for (var i = 0; i < samples.length; i++) {
					var v = (samples[i] - 128) / 128;
					sum += v * v;
				}
				var level = Math.min(1, Math.sqrt(sum / samples.length) * 3);
				self.meter.setAttribute('aria-valuenow', String(Math.round(level * 100)));
				self.meter.dataset.level = level.toFixed(2);
				self.bar.style.transform = 'scaleX(' + Math.max(0.02, level).toFixed(3) + ')';
				self.frame = requestAnimationFrame(tick);
			};
			tick();
		} catch (e) {
			/* the meter is a nicety */
		}
	};

	ChatboxRecorder.prototype.cleanup = function () {
		cancelAnimationFrame(this.frame);
		if (this.audio) {
			this.audio.close().catch(() => {});
			this.audio = null;
		}
		if (this.stream) {
			this.stream.getTracks().forEach((t) => {
				t.stop();
			});
			this.stream = null;
		}
		this.recorder = null;
		this.bar.style.transform = 'scaleX(0)';
	};

	window.ChatboxRecorder = ChatboxRecorder;
})();
