// markdown.js — a small, safe Markdown renderer written by hand. It BUILDS
// DOM nodes (createElement / textContent) and never parses HTML, so any
// markup in a message (<img onerror=…>, <script>) shows as literal text.
// Supported: paragraphs, line breaks, **bold**, *italic*, `inline code`,
// fenced code blocks (with a copy button), headings, lists, blockquotes,
// horizontal rules, and links for http, https and mailto only.
// API: ChatboxMarkdown.render(text) → DocumentFragment.
'use strict';

(function () {
	var S = window.ChatboxStrings;
	var SAFE_PROTOCOLS = { 'http:': true, 'https:': true, 'mailto:': true };

	function el(tag, cls, text) {
		var node = document.createElement(tag);
		if (cls) node.className = cls;
		if (text != null) node.textContent = text;
		return node;
	}

	/** The URL if it is an absolute http(s) or mailto link, else null. */
	function safeUrl(raw) {
		try {
			var url = new URL(raw);
			return SAFE_PROTOCOLS[url.protocol] ? url.href : null;
		} catch (e) {
			return null;
		}
	}

	function link(href, parent, label) {
		var a = el('a');
		a.href = href;
		a.rel = 'noopener noreferrer';
		a.target = '_blank';
		if (label == null) a.textContent = href;
		else inline(label, a, true);
		parent.appendChild(a);
	}

	// One alternative per inline construct; the earliest match wins.
	var INLINE = new RegExp(
		[
			'(`+)([^`]|[^`][\\s\\S]*?[^`])\\1(?!`)', // 1,2: code span
			'\\[([^\\]\\n]+)\\]\\(([^)\\s]+)\\)', // 3,4: [text](url)
			'\\*\\*(?=\\S)([\\s\\S]*?\\S)\\*\\*', // 5: **bold**
			'__(?=\\S)([\\s\\S]*?\\S)__', // 6: __bold__
			'\\*(?=[^\\s*])([^*]*?[^\\s*])\\*', // 7: *italic*  (also *x*)
			'\\*(?=[^\\s*])([^*])\\*', // 8: *x*
			'(^|[\\s(])_(?=\\S)([^_]*?\\S)_(?!\\w)', // 9,10: _italic_ (9: the character before)
			'((?:https?:\\/\\/|mailto:)[^\\s<>"]*[^\\s<>".,:;\'")\\]!?])', // 11: bare link
			'(\\n)', // 12: line break
		].join('|'),
		'g'
	);

	/** Appends the inline content of `text` to `parent`. */
	function inline(text, parent, inLink) {
		var last = 0;
		var m;
		var re = new RegExp(INLINE.source, 'g');
		while ((m = re.exec(text)) !== null) {
			if (m.index > last) parent.appendChild(document.createTextNode(text.slice(last, m.index)));
			last = re.lastIndex;
			if (m[1] !== undefined) {
				parent.appendChild(el('code', null, m[2].replace(/^ (.*) $/, '$1')));
			} else if (m[3] !== undefined) {
				var href = inLink ? null : safeUrl(m[4]);
				if (href) link(href, parent, m[3]);
				else parent.appendChild(document.createTextNode(m[0]));
			} else if (m[5] !== undefined || m[6] !== undefined) {
				var strong = el('strong');
				inline(m[5] !== undefined ? m[5] : m[6], strong, inLink);
				parent.appendChild(strong);
			} else if (m[7] !== undefined || m[8] !== undefined || m[10] !== undefined) {
				if (m[9]) parent.appendChild(document.createTextNode(m[9]));
				var em = el('em');
				inline(m[7] !== undefined ? m[7] : m[8] !== undefined ? m[8] : m[10], em, inLink);
				parent.appendChild(em);
			} else if (m[11] !== undefined) {
				var url = inLink ? null : safeUrl(m[11]);
				if (url) link(url, parent, null);
				else parent.appendChild(document.createTextNode(m[0]));
			} else if (m[12] !== undefined) {
				parent.appendChild(el('br'));
			}
			if (m[0].length === 0) re.lastIndex++;
		}
		if (last < text.length) parent.appendChild(document.createTextNode(text.slice(last)));
	}

	function copyText(text, button) {
		var done = () => {
			button.textContent = S.copied;
			setTimeout(() => {
				button.textContent = S.copy;
			}, 1500);
		};
		if (navigator.clipboard && window.isSecureContext) {
			navigator.clipboard.writeText(text).then(done, () => {});
			return;
		}
		var area = el('textarea');
		area.value = text;
		area.setAttribute('readonly', '');
		area.className = 'visually-hidden';
		document.body.appendChild(area);
		area.select();
		try {
			if (document.execCommand('copy')) done();
		} catch (e) {
			/* copying is a convenience */
		}
		area.remove();
	}

	function codeBlock(code, lang) {
		var wrap = el('div', 'code-block');
		var bar = el('div', 'code-bar');
		bar.appendChild(el('span', 'code-lang', lang || S.codeLabel));
		var button = el('button', 'code-copy', S.copy);
		button.type = 'button';
		button.addEventListener('click', () => {
			copyText(code, button);
		});
		bar.appendChild(button);
		var pre = el('pre');
		pre.tabIndex = 0;
		pre.appendChild(el('code', null, code));
		wrap.appendChild(bar);
		wrap.appendChild(pre);
		return wrap;
	}

	var FENCE = /^ {0,3}(`{3,}|~{3,})\s*([\w+#.-]*)\s*$/;
	var HEADING = /^ {0,3}(#{1,6})\s+(.*?)\s*#*\s*$/;
	var RULE = /^ {0,3}([-*_])(\s*\1){2,}\s*$/;
	var QUOTE = /^ {0,3}> ?(.*)$/;
	var BULLET = /^(\s*)[-*+]\s+(.*)$/;
	var NUMBER = /^(\s*)(\d{1,9})[.)]\s+(.*)$/;

	/** Appends the blocks of `lines` to `parent`. */
	function blocks(lines, parent) {
		var i = 0;
		while (i < lines.length) {
			var line = lines[i];
			var m;
			if (/^\s*$/.test(line)) {
				i++;
			} else if ((m = FENCE.exec(line))) {
				var fence = m[1];
				var body = [];
				i++;
				while (i < lines.length && !new RegExp('^ {0,3}' + fence[0] + '{' + fence.length + ',}\\s*$').test(lines[i])) {
					body.push(lines[i]);
					i++;
				}
				i++; // the closing fence (absent while an answer streams)
				parent.appendChild(codeBlock(body.join('\n'), m[2]));
			} else if ((m = HEADING.exec(line))) {
				var h = el('h' + Math.min(6, m[1].length + 2));
				inline(m[2], h);
				parent.appendChild(h);
				i++;
			} else if (RULE.test(line)) {
				parent.appendChild(el('hr'));
				i++;
			} else if (QUOTE.test(line)) {
				var quoted = [];
				while (i < lines.length && (m = QUOTE.exec(lines[i]))) {
					quoted.push(m[1]);
					i++;
				}
				var q = el('blockquote');
				blocks(quoted, q);
				parent.appendChild(q);
			} else if (BULLET.test(line) || NUMBER.test(line)) {
				var ordered = !BULLET.test(line);
				var list = el(ordered ? 'ol' : 'ul');
				if (ordered) {
					var start = parseInt(NUMBER.exec(line)[2], 10);
					if (start !== 1) list.start = start;
				}
				var item = null;
				while (i < lines.length) {
					var l = lines[i];
					var bm = BULLET.exec(l);
					var nm = NUMBER.exec(l);
					var match = ordered ? nm : bm;
					if (match) {
						item = [match[ordered ? 3 : 2]];
						var li = el('li');
						li._lines = item;
						list.appendChild(li);
						i++;
					} else if (item && /^\s+\S/.test(l)) {
						item.push(l.replace(/^\s+/, ''));
						i++;
					} else {
						break;
					}
				}
				Array.prototype.forEach.call(list.children, (li) => {
					inline(li._lines.join('\n'), li);
					delete li._lines;
				});
				parent.appendChild(list);
			} else {
				var para = [];
				while (
					i < lines.length &&
					!/^\s*$/.test(lines[i]) &&
					!FENCE.test(lines[i]) &&
					!HEADING.test(lines[i]) &&
					!QUOTE.test(lines[i]) &&
					!(para.length && (BULLET.test(lines[i]) || NUMBER.test(lines[i])))
				) {
					para.push(lines[i]);
					i++;
				}
				var p = el('p');
				inline(para.join('\n'), p);
				parent.appendChild(p);
			}
		}
	}

	window.ChatboxMarkdown = {
		render: (text) => {
			var fragment = document.createDocumentFragment();
			blocks(String(text || '').replace(/\r\n?/g, '\n').split('\n'), fragment);
			return fragment;
		},
	};
})();
