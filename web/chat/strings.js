// strings.js — every user-visible string of the chat page, in one object
// (window.ChatboxStrings), so the page can be translated or rebranded by
// replacing this one file. Placeholders are written {name} and filled by
// ChatboxStrings.format(text, {name: value}). Nothing else on the page
// hard-codes text shown to people.
'use strict';

window.ChatboxStrings = {
	title: 'Chat',
	appName: 'Chat',

	// Connection states (connection-status) and what they mean.
	status: {
		connecting: 'Connecting…',
		online: 'Online',
		reconnecting: 'Reconnecting…',
		offline: 'Offline',
		auth: 'Signed out',
	},
	// Said once when the connection is lost; the countdown after it ticks on screen only.
	connectionLost: 'Connection lost.',
	reconnectIn: 'Trying again in {seconds} s.',
	reconnectNow: 'Reconnect now',
	browserOffline: 'You are offline. Messages will be sent when the connection is back.',
	openedElsewhere: 'This conversation is open in another window or device.',
	takeBack: 'Use it here',
	sessionEnded: 'This conversation has ended.',
	startNewChat: 'Start a new chat',
	authNeeded: 'Your sign-in has expired or is not valid. Please sign in again.',
	waitingForToken: 'Waiting for sign-in…',
	noToken: 'This page needs a sign-in link. Open the chat from the app or website that sent you here.',

	// Header and side panel.
	sessions: 'Conversations',
	openSessions: 'Show conversations',
	closeSessions: 'Hide conversations',
	newChat: 'New chat',
	untitled: 'New conversation',
	current: 'Current',
	ended: 'Ended',
	rename: 'Rename',
	renameLabel: 'New name for the conversation',
	renameSave: 'Save',
	renameCancel: 'Cancel',
	noSessions: 'No conversations yet.',
	loadMoreSessions: 'Show older conversations',
	model: 'Model',
	modelChanged: 'Answers now come from {name}.',
	readOnly: 'You are reading an earlier conversation. It has ended and cannot be continued.',
	backToCurrent: 'Back to the current chat',

	// Conversation.
	messagesLabel: 'Conversation',
	emptyTitle: 'How can I help?',
	emptyHint: 'Ask a question, attach a file or hold the microphone button to talk.',
	// Who speaks, read before each message and in what a screen reader is told ({name}: {text}).
	you: 'You',
	assistant: 'Assistant',
	said: '{name}: {text}',
	pending: 'Sending…',
	queued: 'Sent',
	waitingForAssistant: 'Waiting for the assistant…',
	failed: 'Not sent',
	retry: 'Try again',
	// The note under an answer, by its finish_reason (complete has none).
	finishNotes: {
		stopped: 'Stopped',
		user_left: 'Stopped.',
		admin_takeover: 'Stopped: a person joined.',
		interrupted: 'The answer was cut off.',
		length: 'The answer was cut short: it reached the length limit.',
		content_filter: 'The answer was changed or stopped by a content filter.',
	},
	endedEarly: 'The answer ended early.',
	working: 'Working…',
	workingTool: 'Working: {tool}…',
	answeredBy: '{name}',
	fallbackFrom: '(instead of {name})',
	thinking: 'The assistant is thinking…',
	copy: 'Copy',
	copied: 'Copied',
	codeLabel: 'Code',
	loadingHistory: 'Loading the conversation…',

	// Composer.
	composerLabel: 'Message',
	composerPlaceholder: 'Message…',
	composerPlaceholderReadOnly: 'This conversation has ended.',
	send: 'Send',
	stop: 'Stop the answer',
	attach: 'Attach a file',
	dropHere: 'Drop files to send them',
	record: 'Hold to record a voice message',
	recording: 'Recording… release to send, slide away or press Escape to cancel',
	recordingCancelArmed: 'Release to cancel',
	recordTooShort: 'Hold the button to record, release to send.',
	recordCancelled: 'Recording cancelled.',
	micDenied: 'The microphone is not available. Allow it in your settings to send voice messages.',
	micUnsupported: 'Voice messages are not supported here.',
	voiceMessage: 'Voice message',
	sendingVoice: 'Sending voice message…',

	// People.
	help: 'Talk to a person',
	helpContent: 'I would like to talk to a person.',
	helpRequested: 'You asked to talk to a person. Someone will join as soon as possible.',
	helpAssisted: 'You asked to talk to a person. Someone is already here.',
	assistedBy: 'Assisted by {name}',
	adminJoined: '{name} joined the conversation.',
	adminLeft: '{name} left the conversation. The assistant is back.',
	someone: 'A person',
	isTyping: '{name} is typing…',
	person: 'Person',

	// Files.
	uploading: 'Uploading {name}…',
	uploadFailed: 'The upload failed. Check your connection and try again.',
	fileSize: '{size}',
	download: 'Download',
	downloadName: 'Download {name}',
	openImage: 'Open {name} full size',
	closeViewer: 'Close',
	imageViewer: 'Image',
	bytes: '{n} B',
	kilobytes: '{n} KB',
	megabytes: '{n} MB',
	transcriptFailed: 'The recording could not be transcribed.',
	transcriptUnavailable: 'No transcript is available for this recording.',

	// Errors.
	dismiss: 'Dismiss',
	waitSeconds: 'You can send again in {seconds} s.',
	errorGeneric: 'Something went wrong. Please try again.',
	errors: {
		INVALID_TOKEN: 'Your sign-in is not valid. Please sign in again.',
		TOKEN_EXPIRED: 'Your sign-in has expired. Please sign in again.',
		FORBIDDEN: 'You are not allowed to do that.',
		ORIGIN_NOT_ALLOWED: 'The chat cannot be used from this website.',
		INVALID_MESSAGE: 'That message could not be read. Please try again.',
		UNKNOWN_MESSAGE_TYPE: 'The page sent something the server did not understand. Reload the page.',
		MISSING_FIELD: 'Something was missing from the request. Please try again.',
		INVALID_FIELD: 'Something in the request was not valid.',
		NOT_ALLOWED: 'That is not allowed here.',
		MESSAGE_TOO_LARGE: 'The message is too long. Please shorten it.',
		UNSUPPORTED: 'This feature is not available yet.',
		SESSION_NOT_FOUND: 'That conversation could not be found.',
		SESSION_ENDED: 'This conversation has ended. Start a new chat to continue.',
		SESSION_LOCKED: 'Someone else is handling this conversation.',
		RATE_LIMITED: 'You are sending messages too fast.',
		SERVICE_UNAVAILABLE: 'Your message could not be delivered right now.',
		LLM_UNAVAILABLE: 'The assistant could not answer right now.',
		CONNECTION_LIMIT: 'The service is very busy. Trying again shortly.',
		SERVER_SHUTDOWN: 'The service is restarting. Reconnecting…',
		DATABASE_ERROR: 'Storage is having trouble. Your message is kept and will be answered when it is back.',
		FILE_TOO_LARGE: 'The file is too large.',
		FILE_TYPE_NOT_ALLOWED: 'This type of file cannot be sent.',
		FILE_REJECTED: 'The file was refused.',
		FILE_NOT_FOUND: 'The file could not be found. Please attach it again.',
		STORAGE_ERROR: 'File storage is having trouble. Please try again later.',
		INTERNAL_ERROR: 'Something went wrong on our side. Please try again.',
	},
	// Codes whose server message adds useful detail (a limit, a reason).
	detailCodes: ['FILE_TOO_LARGE', 'FILE_TYPE_NOT_ALLOWED', 'FILE_REJECTED', 'INVALID_FIELD', 'MESSAGE_TOO_LARGE', 'SESSION_LOCKED'],

	// Times.
	justNow: 'just now',
	minutesAgo: '{n} min ago',
	hoursAgo: '{n} h ago',

	format: function (text, values) {
		return String(text).replace(/\{(\w+)\}/g, function (whole, key) {
			return values && Object.prototype.hasOwnProperty.call(values, key) ? String(values[key]) : whole;
		});
	},
};
