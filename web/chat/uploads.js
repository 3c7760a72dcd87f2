// uploads.js — sending files and recordings. The bytes never go through
// the socket: request_upload → upload_slot (a signed URL) → PUT with
// XMLHttpRequest (for progress) → file_upload / voice_message with the
// file id. Each upload is a "job" the page draws as a card; this file
// keeps the jobs' state and tells the page through onChange(job).
// API: new ChatboxUploads({send, newId, onChange}); .start(file, options),
// .onSlot(frame), .onError(frame), .onEcho(frame), .resend(), .formatSize(n).
'use strict';

(function () {
	var S = window.ChatboxStrings;

	function ChatboxUploads(deps) {
		this.deps = deps;
		this.byRequest = new Map(); // request_upload id → job
		this.bySend = new Map(); // file_upload / voice_message id → job
	}

	/** `content_type` without parameters ("audio/webm;codecs=opus" → "audio/webm"). */
	ChatboxUploads.baseType = (type) => {
		return (String(type || '').split(';')[0].trim() || 'application/octet-stream').toLowerCase();
	};

	ChatboxUploads.formatSize = (n) => {
		n = Number(n) || 0;
		if (n < 1024) return S.format(S.bytes, { n: n });
		if (n < 1024 * 1024) return S.format(S.kilobytes, { n: Math.round(n / 102.4) / 10 });
		return S.format(S.megabytes, { n: Math.round(n / 104857.6) / 10 });
	};

	/**
	 * Starts sending `file` (a File or Blob). options: {purpose: "file" |
	 * "voice", caption, name}. Returns the job.
	 */
	ChatboxUploads.prototype.start = function (file, options) {
		options = options || {};
		var purpose = options.purpose || 'file';
		var job = {
			requestId: this.deps.newId('u'),
			sendId: this.deps.newId(purpose === 'voice' ? 'v' : 'f'),
			file: file,
			name: options.name || file.name || 'file',
			size: file.size,
			contentType: ChatboxUploads.baseType(file.type),
			purpose: purpose,
			caption: options.caption || '',
			state: 'requesting',
			progress: 0,
			fileId: null,
			error: null,
			localUrl: null,
		};
		if (purpose === 'file' && /^image\//.test(job.contentType)) {
			job.localUrl = URL.createObjectURL(file);
		}
		this.byRequest.set(job.requestId, job);
		this.bySend.set(job.sendId, job);
		this.deps.onChange(job);
		this.request(job);
		return job;
	};

	ChatboxUploads.prototype.request = function (job) {
		this.deps.send({
			type: 'request_upload',
			id: job.requestId,
			data: { name: job.name, size: job.size, content_type: job.contentType, purpose: job.purpose },
		});
	};

	ChatboxUploads.prototype.share = function (job) {
		job.state = 'sharing';
		this.deps.onChange(job);
		var frame = { type: job.purpose === 'voice' ? 'voice_message' : 'file_upload', id: job.sendId, file_id: job.fileId };
		if (job.purpose !== 'voice' && job.caption) frame.content = job.caption;
		this.deps.send(frame);
	};

	/** An `upload_slot`: PUT the bytes. True when it was one of ours. */
	ChatboxUploads.prototype.onSlot = function (frame) {
		var job = this.byRequest.get(frame.id);
		if (!job || job.state !== 'requesting') return !!job;
		var data = frame.data || {};
		job.fileId = data.file_id || frame.file_id;
		job.state = 'uploading';
		this.deps.onChange(job);
		var self = this;
		var xhr = new XMLHttpRequest();
		job.xhr = xhr;
		xhr.open(data.method || 'PUT', data.upload_url);
		var headers = data.headers || {};
		Object.keys(headers).forEach((name) => {
			xhr.setRequestHeader(name, headers[name]);
		});
		xhr.upload.onprogress = (event) => {
			if (event.lengthComputable) {
				job.progress = event.loaded / event.total;
				self.deps.onChange(job);
			}
		};
		xhr.onload = () => {
			job.xhr = null;
			if (xhr.status >= 200 && xhr.status < 300) {
				job.progress = 1;
				self.share(job);
			} else {
				self.fail(job, null, S.uploadFailed);
			}
		};
		xhr.onerror = () => {
			job.xhr = null;
			self.fail(job, null, S.uploadFailed);
		};
		xhr.send(job.file);
		return true;
	};

	ChatboxUploads.prototype.fail = function (job, code, message) {
		job.state = 'failed';
		job.error = { code: code, message: message };
		this.deps.onChange(job);
	};

	/** An `error` answering one of our requests: the job it failed, or null. */
	ChatboxUploads.prototype.onError = function (frame, text) {
		var job = this.byRequest.get(frame.id) || this.bySend.get(frame.id);
		if (!job || job.state === 'done') return null;
		this.fail(job, frame.error && frame.error.code, text);
		return job;
	};

	/** An echoed file or voice message: the job it completes, or null. */
	ChatboxUploads.prototype.onEcho = function (frame) {
		var job = frame.id && this.bySend.get(frame.id);
		if (!job) return null;
		job.state = 'done';
		this.byRequest.delete(job.requestId);
		this.bySend.delete(job.sendId);
		if (job.localUrl) URL.revokeObjectURL(job.localUrl);
		job.localUrl = null;
		job.file = null;
		return job;
	};

	/** Resends what a reconnect may have lost (same ids: accepted once). */
	ChatboxUploads.prototype.resend = function (echoedIds) {
		var self = this;
		this.bySend.forEach((job) => {
			if (echoedIds && echoedIds.has(job.sendId)) return;
			if (job.state === 'requesting') self.request(job);
			else if (job.state === 'sharing') self.share(job);
		});
	};

	ChatboxUploads.prototype.forget = function (job) {
		if (job.xhr) job.xhr.abort();
		if (job.localUrl) URL.revokeObjectURL(job.localUrl);
		this.byRequest.delete(job.requestId);
		this.bySend.delete(job.sendId);
	};

	window.ChatboxUploads = ChatboxUploads;
})();
