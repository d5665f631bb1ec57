"""The documentation site builds offline and works in a real browser (headless Chromium).

Every page loads with no JavaScript error and no failed or off-site request, every image has loaded, math is
typeset, each exported name has its API entry where nbdev's links point (`page.html#name`), internal links land on
a page and an anchor that exist, and search finds words from the chapters. API entries render cleanly (one per name
and page, classes as classes, no inferred `NoneType`s, no heading for internal helpers), exported code is folded,
every picture has alt text and legible text at the desktop column width, code wraps in the column, and on a phone the
menu and contents buttons open their sidebars. Outside CI a missing browser skips the browser part; in CI
(`CI=true`) it is a failure.
"""
import base64, collections, hashlib, html, functools, html.parser, http.server, importlib, inspect, io, json, os, re
import shutil, threading, time
from pathlib import Path
from urllib.parse import urljoin, urlsplit
import pytest
from conftest import ROOT, SUMMARY, notebooks, package_classes_kept

from fastnote._modidx import d as modidx

CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-default-apps']
# a word that only a chapter's prose has, and the page search must find it on
SEARCHES = {'curvature': 'optimizer.html', 'canyon': 'momentum.html', 'lockstep': 'rmsprop.html', 'signum': 'adam.html',
            'overfitting': 'decay.html', 'mixup': 'callbacks.html', 'tqdm': 'learner.html', 'annealing': 'schedule.html', 'amplifies': 'checkpoint.html', 'patience': 'training_callbacks.html', 'replicas': 'distributed.html', 'banana': 'lab.html',
            'leaderboard': 'demo.html', 'rectification': 'trust.html', 'hyperbolic': 'lookahead.html',
            'iterates': 'after_adam.html', 'Schulz': 'matrices.html'}


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    from docs import build_site
    tmp, start = tmp_path_factory.mktemp('site'), time.perf_counter()
    with package_classes_kept():     # processing the pages runs their export cells, `@patch`es included
        out = build_site(out=tmp/'_docs', work=tmp/'_build')
    SUMMARY.append(f"docs site: built offline in {time.perf_counter() - start:.1f} s, {len(pages(out))} pages")
    return out


def pages(site:Path)->list:
    return sorted(p.relative_to(site).as_posix() for p in site.rglob('*.html') if '_static' not in p.parts)


class _Links(html.parser.HTMLParser):
    "Ids and link targets of one HTML page."
    def __init__(self):
        super().__init__()
        self.ids, self.hrefs = set(), []
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if a.get('id'): self.ids.add(a['id'])
        if tag == 'a' and a.get('href'): self.hrefs.append(a['href'])


def parse(page:Path)->_Links:
    p = _Links()
    p.feed(page.read_text(encoding='utf-8'))
    return p


def test_site_has_every_chapter(site):
    from docs import notebook_pages
    expected = {f'{p}.html' for p in notebook_pages().values()}
    assert expected <= set(pages(site)), f"missing pages: {expected - set(pages(site))}"
    assert (site/'_static'/'mathjax'/'tex-chtml.js').exists(), "MathJax is not served from the site"


def test_page_sources_are_valid_notebooks(site):
    "What Sphinx reads passes nbformat's validation (execution metadata from nbdev's run would not)."
    import nbformat
    sources = sorted((site.parent/'_build'/'site_src').glob('*.ipynb'))
    assert sources
    for path in sources: nbformat.validate(nbformat.read(path, as_version=4))


def test_internal_links_resolve(site):
    "Every link inside the site goes to a file that exists and, when it names an anchor, to an id on that page."
    parsed, broken = {p: parse(site/p) for p in pages(site)}, []
    for page, links in parsed.items():
        for href in links.hrefs:
            parts = urlsplit(href)
            if parts.scheme or parts.netloc or href.startswith(('mailto:', 'javascript:')): continue
            target = urlsplit(urljoin(page, parts.path)).path if parts.path else page
            if not (site/target).exists(): broken.append(f"{page}: {href} (no {target})"); continue
            if parts.fragment and target in parsed and parts.fragment not in parsed[target].ids:
                broken.append(f"{page}: {href} (no id {parts.fragment!r} on {target})")
    assert not broken, '\n'.join(broken)


def is_event_handler(mod, qualname:str)->bool:
    "Whether `qualname` is a callback's method named after an event, like `Recorder.after_batch`."
    from fastnote.callback import Callback, EVENTS
    cls, _, method = qualname.partition('.')
    owner = getattr(mod, cls, None)
    return method in EVENTS and isinstance(owner, type) and issubclass(owner, Callback)


def test_api_docs_where_nbdev_links_point(site):
    "Each exported public name has a section with its id at `page.html#name`, showing its signature and docstring."
    for module, syms in modidx['syms'].items():
        mod = importlib.import_module(module)
        for sym, (link, _) in syms.items():
            qualname = sym[len(module) + 1:]                      # `sgd_step`, or `Optimizer.step` for a method
            if any(part.startswith('_') for part in qualname.split('.')): continue   # private: indexed, not documented
            if is_event_handler(mod, qualname): continue        # the loop calls it; its class's docs say what it does
            page, _, anchor = link.partition('#')
            text = (site/page).read_text(encoding='utf-8')
            assert f'id="{anchor}"' in text, f"{sym}: no element with id {anchor!r} on {page}"
            name = qualname.split('.')[-1]
            signature = (rf'<span class="n[fc]">{re.escape(name)}</span>'     # a signature block, highlighted
                         rf'|<code class="api-name[^"]*"><span class="pre">{re.escape(qualname)}[(<]')   # an exception's line
            assert re.search(signature, text), f"{sym}: no signature on {page}"
            doc = inspect.getdoc(functools.reduce(getattr, qualname.split('.'), mod)) or ''
            plain = re.match(r"[\w ,.'-]*", doc).group(0).strip()  # the docstring's words before any markup
            assert len(plain) >= 10, f"{sym}: its docstring is missing or starts with markup: {doc[:40]!r}"
            shown = html.unescape(text).replace('\u2019', "'")       # Sphinx may curl apostrophes
            assert plain in shown, f"{sym}: its docstring is not shown on {page}"


class ApiEntry(collections.namedtuple('ApiEntry', 'name style signature markup ids')):
    """One API entry of a page, as `docs.api_entry` writes it. `style`: 'heading' (a public name: heading, signature,
    docstring), 'exception' (one line) or 'internal' (an internal helper: no heading); `markup`: the tags inside its
    heading (`strong` for a heading where markdown ate `__call__`'s underscores); `ids`: its heading's anchors."""


class _Page(html.parser.HTMLParser):
    "The headings, API entries, folded code and pictures of one HTML page."
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.headings, self.entries, self.folds, self.images = [], [], [], []
        self._divs, self._ids, self._heading_ids, self._markup, self._in_link = [], [], [], [], False
        self._heading = self._sig = self._box = self._name = self._fold = None   # text parts, while inside one
    def handle_starttag(self, tag, attrs):
        a = dict(attrs); cls = (a.get('class') or '').split()
        if self._heading is not None:
            if tag == 'a' and 'headerlink' in cls: self._in_link = True
            elif tag in ('strong', 'em', 'b', 'i'): self._markup.append(tag)
        if tag == 'section': self._ids = [a['id']] if a.get('id') else []
        elif tag == 'span' and a.get('id'): self._ids.append(a['id'])        # MyST's slug anchor, before the heading
        if re.fullmatch(r'h[1-6]', tag): self._heading, self._markup, self._heading_ids, self._ids = [], [], self._ids, []
        if tag == 'div':
            self._divs.append(cls)
            if 'api-signature' in cls: self._sig = []
            if 'api-entry' in cls:
                self._box = dict(style='exception' if 'api-exception' in cls else 'internal', name='', signature='')
        if tag == 'code' and 'api-name' in cls and self._box is not None: self._name = []
        if tag == 'details' and 'code-fold' in cls: self._fold = dict(open='open' in a, text=[])
        if tag == 'img': self.images.append(dict(src=a.get('src', ''), alt=a.get('alt')))
    def handle_endtag(self, tag):
        if tag == 'a' and self._in_link: self._in_link = False
        if re.fullmatch(r'h[1-6]', tag) and self._heading is not None:
            self.headings.append((''.join(self._heading).strip(), tuple(self._markup), tuple(self._heading_ids)))
            self._heading = None
        if tag == 'code' and self._name is not None:
            self._box['name'], self._name = ''.join(self._name).strip().split('(')[0], None   # `Name(Base)`
        if tag == 'details' and self._fold is not None:
            self._fold['text'] = ''.join(self._fold['text']); self.folds.append(self._fold); self._fold = None
        if tag == 'div' and self._divs:
            cls = self._divs.pop()
            if 'api-signature' in cls and self._sig is not None:
                sig, self._sig = ''.join(self._sig).strip(), None
                if self._box is not None: self._box['signature'] = sig
                elif self.headings: self.entries.append(ApiEntry(self.headings[-1][0], 'heading', sig, *self.headings[-1][1:]))
            if 'api-entry' in cls and self._box is not None:
                self.entries.append(ApiEntry(self._box['name'], self._box['style'], self._box['signature'], (), ()))
                self._box = None
    def handle_data(self, data):
        if self._heading is not None and not self._in_link: self._heading.append(data)
        if self._sig is not None: self._sig.append(data)
        if self._name is not None: self._name.append(data)
        if self._fold is not None: self._fold['text'].append(data)


def parse_page(page:Path)->_Page:
    p = _Page()
    p.feed(page.read_text(encoding='utf-8'))
    return p


def test_no_api_entry_twice(site):
    """One API entry per name and page, and it has the anchor nbdev links to. nbdev's `add_show_docs` documents a
    `@patch`ed method a second time unless docs.py stops it (`shown_once`); a notebook can show_doc a name twice; and
    an earlier section whose heading has the entry's words takes its anchor, so `page.html#name` lands there."""
    from docs import quarto_slug
    problems = []
    for page in pages(site):
        p = parse_page(site/page)
        counts = collections.Counter(e.name for e in p.entries)
        problems += [f"{page}: {name} has {n} API entries" for name, n in counts.items() if n > 1]
        for e in p.entries:
            if e.style == 'heading' and counts[e.name] == 1 and quarto_slug(e.name) not in e.ids:
                taken = next((h for h, _, ids in p.headings if quarto_slug(e.name) in ids), '?')
                if taken in counts and taken != e.name:   # `Trajectory` and `trajectory`: both nbdev's #trajectory
                    SUMMARY.append(f"docs site: {page}: {taken} and {e.name} share nbdev's anchor #{quarto_slug(e.name)}")
                else: problems.append(f"{page}: {e.name}: its anchor #{quarto_slug(e.name)} belongs to the section "
                                      f"{taken!r}, so nbdev's links land there; give that section other words")
    assert not problems, '\n'.join(problems)


def public_symbols():
    "`(qualname, object, page)` of each public name in nbdev's index, `object` as its class holds it (a property)."
    for module, syms in modidx['syms'].items():
        mod = importlib.import_module(module)
        for sym, (link, _) in syms.items():
            qualname = sym[len(module) + 1:]
            if any(part.startswith('_') and not part.endswith('__') for part in qualname.split('.')): continue
            *owner, last = qualname.split('.')
            try: obj = inspect.getattr_static(functools.reduce(getattr, owner, mod), last)
            except AttributeError: continue
            yield qualname, obj, link.partition('#')[0]


def test_api_entries_render_cleanly(site):
    """A class shows as a class, a property as a property, an exception as one line; a heading keeps the name's
    underscores (`Learner.__call__`, not Learner.**call**); a signature has no annotation fastcore inferred from a
    default (`x:NoneType=None`) or module path of the notebook (`__main__.`); an internal helper (`_name`) has no heading."""
    from docs import is_internal
    parsed = {page: parse_page(site/page) for page in pages(site)}
    problems = []
    for page, p in parsed.items():
        for e in p.entries:
            if bad := re.findall(r'\w+:NoneType|->NoneType|__main__\.|\w+:function=', e.signature):
                problems.append(f"{page}: {e.name}: the signature shows {', '.join(bad)}")
            if e.markup: problems.append(f"{page}: the heading of {e.name!r} has {'/'.join(e.markup)} markup: markdown took "
                                         f"underscores or stars in the name for emphasis")
            if is_internal(e.name) and e.style != 'internal': problems.append(f"{page}: {e.name} is internal but has a heading")
        problems += [f"{page}: the heading {h!r} has {'/'.join(m)} markup, not the name as written" for h, m, _ in p.headings
                     if m and re.fullmatch(r'[\w.]+', h)]
        problems += [f"{page}: the internal name {h!r} has a heading" for h, _, _ in p.headings
                     if re.fullmatch(r'[\w.]+', h) and is_internal(h)]
    checked = collections.Counter()
    for qualname, obj, page in public_symbols():
        entry = next((e for e in parsed.get(page, _Page()).entries if e.name == qualname), None)
        if entry is None: continue                                  # test_api_docs_where_nbdev_links_point: is it there
        if isinstance(obj, type) and issubclass(obj, BaseException):
            kind, ok = 'exception', entry.style == 'exception'
        elif isinstance(obj, type): kind, ok = 'class', entry.signature.startswith('class ')
        elif isinstance(obj, (property, functools.cached_property)): kind, ok = 'property', entry.signature.startswith('@property\n')
        else: kind, ok = 'function', entry.signature.startswith(('def ', 'async def ', '@classmethod', '@staticmethod'))
        checked[kind] += 1
        if not ok: problems.append(f"{page}: {qualname} is a {kind} but shows as {entry.style}: {entry.signature[:60]!r}")
    assert not problems, '\n'.join(problems)
    assert checked['class'] and checked['function'], f"no API entries found to check: {dict(checked)}"
    SUMMARY.append(f"docs site: API entries checked by kind: {dict(checked)}")


def test_exported_code_is_folded(site):
    """Every `#| exports` cell's code is on its page inside a <details>: closed, or open with `#| code-fold: show`
    (code the reader must see, like the training loop); `#| code-fold: false` shows it as a plain cell."""
    from docs import code_fold, notebook_pages, split_options
    problems, n = [], 0
    for nb_name, page in notebook_pages().items():
        cells = json.loads((ROOT/'nbs'/nb_name).read_text(encoding='utf-8'))['cells']
        p, text = parse_page(site/f'{page}.html'), None
        for i, cell in enumerate(cells):
            opts, code = split_options(''.join(cell['source']))
            if cell['cell_type'] != 'code' or 'exports' not in opts: continue
            first = next((l.strip() for l in code.splitlines() if l.strip()), '')
            fold, summary = code_fold(opts)
            found = [f for f in p.folds if code.strip() in f['text']]
            n += 1
            if fold is None:
                text = text or html.unescape(re.sub(r'<[^>]+>', '', (site/f'{page}.html').read_text(encoding='utf-8')))
                if found or first not in text: problems.append(f"{page}.html: {nb_name} cell {i} (`{first}`): not a plain cell")
            elif not found: problems.append(f"{page}.html: {nb_name} cell {i} (`{first}`): its code is not in a folded block")
            elif found[0]['open'] != (fold == 'open') or not found[0]['text'].lstrip().startswith(summary):
                problems.append(f"{page}.html: {nb_name} cell {i} (`{first}`): folded {'open' if found[0]['open'] else 'closed'}"
                                f", expected {fold} under {summary!r}")
    assert not problems, '\n'.join(problems)
    assert n > 0, "no `#| exports` cell in nbs/"


def notebook_pictures()->dict:
    "`{sha256 of a picture's bytes: (notebook, cell index, first line of code)}` for the pictures stored in nbs/."
    found = {}
    for path in notebooks():
        for i, cell in enumerate(json.loads(path.read_text(encoding='utf-8'))['cells']):
            code = next((l for l in ''.join(cell['source']).splitlines() if l.strip() and not l.startswith('#|')), '')
            for o in cell.get('outputs', []):
                for mime, data in o.get('data', {}).items():
                    data = ''.join(data) if isinstance(data, list) else data
                    if mime in ('image/png', 'image/jpeg', 'image/gif'): blobs = [data]
                    elif mime == 'text/html': blobs = re.findall(r'data:image/\w+;base64,([A-Za-z0-9+/=\s]+)', data)
                    else: continue
                    for b in blobs: found[hashlib.sha256(base64.b64decode(b)).hexdigest()] = (path.name, i, code)
    return found


def picture_bytes(site:Path, page:str, src:str)->bytes:
    "The bytes of the picture an <img src> shows: a file of the site, or a data: URI."
    if src.startswith('data:'): return base64.b64decode(src.partition(',')[2])
    return (site/urlsplit(urljoin(page, src)).path).read_bytes()


def where(cells:dict, data:bytes)->str:
    "The notebook cell a picture comes from, for a failure message."
    nb, i, code = cells.get(hashlib.sha256(data).hexdigest(), ('a notebook', '?', ''))
    return f"{nb} cell {i} (`{code.strip()[:60]}`)"


def meaningful_alt(alt)->bool:
    "Alt text that says what a picture shows: a few words, not a file name (Sphinx's default) nor empty."
    return bool(alt) and not re.search(r'_images/|\.(png|gif|jpe?g|svg)\b', alt) and len(re.findall(r'[^\W\d_]{2,}', alt)) >= 3


def test_callbacks_page_shows_both_loops_and_every_event(site):
    "The callbacks chapter shows the loop written by hand, then the Learner's loop with its events, open on the page."
    page = html.unescape(re.sub(r'<[^>]+>', '', (site/'callbacks.html').read_text(encoding='utf-8')))
    for line in ('loss = F.cross_entropy(model(xb), yb)', 'loss.backward()', 'opt.zero_grad()'):
        assert line in page, f"callbacks.html lacks the hand-written loop's {line!r}"
    for line in ("self('after_pred')", "self('after_loss')", "self._with_events(self._do_fit, 'fit', CancelFitException)",
                 "self._with_events(self._backward, 'backward', CancelBackwardException)", 'def all_batches(self):'):
        assert line in page, f"callbacks.html lacks the Learner's loop line {line!r}"
    from fastnote import EVENTS
    missing = [e for e in EVENTS if e not in page]
    assert not missing, f"callbacks.html never names the events {missing}"


def test_pictures_have_alt_text(site):
    """Every picture says what it shows to a reader who cannot see it: `#| fig-alt: ...` in the cell that draws it
    (docs.py makes it the <img alt>; without it Sphinx writes the file name)."""
    cells, problems, n = notebook_pictures(), [], 0
    for page in pages(site):
        for img in parse_page(site/page).images:
            n += 1
            if not meaningful_alt(img['alt']):
                problems.append(f"{page}: {where(cells, picture_bytes(site, page, img['src']))}: alt text {img['alt']!r}; "
                                f"add `#| fig-alt: <what the picture shows>` to the cell")
    assert not problems, f"{len(problems)} of {n} pictures lack alt text:\n" + '\n'.join(problems)


def find_chromium():
    for c in (os.environ.get('CHROMIUM'), 'chromium', 'chromium-browser', 'google-chrome'):
        if c and shutil.which(c): return shutil.which(c)


@pytest.fixture(scope='module')
def browser():
    exe = find_chromium()
    if exe is None:
        msg = "no Chromium found (Debian: apt-get install chromium); the browser checks of the docs site need it"
        if os.environ.get('CI', '').lower() in ('1', 'true', 'yes'): pytest.fail(msg)
        pytest.skip(msg)
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope='module')
def server(site):
    "The site on a local port; the only host any page may talk to."
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.func.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f'http://127.0.0.1:{srv.server_port}/'
    srv.shutdown()


class PageProbe:
    "Opens pages in a fresh browser context and records errors, failed requests and off-site requests."
    def __init__(self, browser, base:str, **context):
        self.base, self.problems = base, []
        self.ctx = browser.new_context(**context)
        self.ctx.route('**/*', self._route)
        self.page = self.ctx.new_page()
        self.page.on('pageerror', lambda e: self.problems.append(f'JavaScript error: {e}'))
        self.page.on('console', lambda m: m.type == 'error' and self.problems.append(f'console error: {m.text}'))
        self.page.on('requestfailed', lambda r: self.problems.append(f'request failed: {r.url} ({r.failure})'))
        self.page.on('response', lambda r: r.status >= 400 and self.problems.append(f'HTTP {r.status}: {r.url}'))

    def _route(self, route):
        url = route.request.url
        if url.startswith(self.base) or url.startswith(('data:', 'blob:', 'about:')): return route.continue_()
        self.problems.append(f'request to another host: {url}')
        route.abort()

    def open(self, path:str):
        self.problems.clear()
        self.page.goto(self.base + path, wait_until='load')
        self.page.wait_for_function('() => !window.MathJax || !window.MathJax.startup || window.MathJax.startup.promise')
        self.page.evaluate('() => window.MathJax && window.MathJax.startup ? window.MathJax.startup.promise : null')
        self.page.wait_for_load_state('networkidle')
        return self.page


def test_every_page_in_the_browser(site, server, browser):
    probe, report, typeset = PageProbe(browser, server), [], 0
    for path in pages(site):
        page = probe.open(path)
        broken_imgs = page.evaluate('() => Array.from(document.images).filter(i => !(i.complete && i.naturalWidth > 0)).map(i => i.src)')
        math = page.evaluate('''() => { const m = Array.from(document.querySelectorAll('.math'));
                                        return [m.length, m.filter(e => e.querySelector('mjx-container')).length]; }''')
        typeset += math[1]
        problems = list(probe.problems)
        if broken_imgs: problems.append(f'images not loaded: {broken_imgs}')
        if math[0] != math[1]: problems.append(f'{math[0] - math[1]} of {math[0]} formulas not typeset')
        report += [f'{path}: {p}' for p in problems]
    assert not report, '\n'.join(report)
    SUMMARY.append(f"docs site: {len(pages(site))} pages checked in {browser.browser_type.name} {browser.version}, "
                   f"{typeset} formulas typeset")
    assert typeset > 0, "no page has typeset math: the chapters' formulas are missing"
    probe.ctx.close()


def test_every_chapter_shows_a_plot(site, server, browser):
    "A chapter teaches with a plot; one whose page has none lost its stored outputs or never had one."
    from docs import notebook_pages
    probe = PageProbe(browser, server)
    for page in notebook_pages().values():
        if page == 'index': continue
        n = probe.open(f'{page}.html').evaluate('() => Array.from(document.images).filter(i => i.naturalWidth > 100).length')
        assert n >= 1, f"{page}.html shows no plot"
    probe.ctx.close()


DESKTOP = dict(width=1280, height=720)   # the most common laptop width: the page column is about 690 px wide
PHONE = dict(width=400, height=800)
MIN_TEXT_PX = 9                           # matplotlib's default 10 pt text, as the page shows it


def test_plot_text_is_legible(site, server, browser):
    """A figure wider than the column is shrunk to fit, and its text with it: matplotlib's default 10 pt text is
    `10/72 * dpi` px in the stored picture, times displayed/natural width on the page. At the desktop width it must
    be at least MIN_TEXT_PX, so a figure is at most `10/72 * column / MIN_TEXT_PX` inches wide (about 10.5)."""
    from PIL import Image
    probe, cells, problems, sizes = PageProbe(browser, server, viewport=DESKTOP), notebook_pictures(), [], []
    for page in pages(site):
        shown = probe.open(page).evaluate("""() => Array.from(document.querySelectorAll('.bd-article img'))
            .map(i => [i.getAttribute('src'), i.getBoundingClientRect().width, i.naturalWidth])""")
        for src, width, natural in shown:
            if not (width and natural): continue                  # not displayed (inside a closed <details>)
            data = picture_bytes(site, page, src)
            with Image.open(io.BytesIO(data)) as im: dpi = float((im.info.get('dpi') or (72, 72))[0])
            px = 10 / 72 * dpi * width / natural
            sizes.append((px, page))
            if px < MIN_TEXT_PX:
                problems.append(f"{page}: {where(cells, data)}: 10 pt text shows at {px:.1f} px: the figure is "
                                f"{natural / dpi:.1f} in wide ({natural} px at {dpi:.0f} dpi), shown {width:.0f} px wide; make "
                                f"it at most {10 / 72 * width / MIN_TEXT_PX:.1f} in wide (figsize)")
    probe.ctx.close()
    assert sizes, "no pictures on the site"
    SUMMARY.append(f"docs site: {len(sizes)} pictures at {DESKTOP['width']} px, the smallest plot text "
                   f"{min(sizes)[0]:.1f} px ({min(sizes)[1]})")
    assert not problems, f"text under {MIN_TEXT_PX} px at {DESKTOP['width']} px wide:\n" + '\n'.join(problems)


def test_code_wraps_in_the_column(site, server, browser):
    "On a phone, code (cells, signatures, folded code, opened) wraps instead of running past the column."
    probe, problems = PageProbe(browser, server, viewport=PHONE), []
    for page in pages(site):
        p = probe.open(page)
        p.evaluate("() => document.querySelectorAll('details').forEach(d => d.open = true)")
        wide = p.evaluate("""() => Array.from(document.querySelectorAll(
            '.bd-article .cell_input pre, .bd-article .api-signature pre, .bd-article details.code-fold pre'))
            .filter(p => p.scrollWidth > p.clientWidth + 1).map(p => p.innerText.split('\\n')[0].slice(0, 60))""")
        problems += [f"{page}: code runs past the column: {line!r}" for line in wide]
    probe.ctx.close()
    assert not problems, '\n'.join(problems)


def test_folded_code_opens(site, server, browser):
    "Exported code is hidden until its summary is clicked, then shown."
    probe = PageProbe(browser, server)
    p = probe.open('momentum.html')
    fold = p.locator('details.code-fold', has_text='Exported source').first
    assert fold.locator('pre').is_hidden()
    fold.locator('summary').click()
    assert fold.locator('pre').is_visible() and 'def ' in fold.locator('pre').inner_text()
    assert not probe.problems, probe.problems
    probe.ctx.close()


def test_phone_menu_and_contents(site, server, browser, tmp_path_factory):
    """At 400 px the menu (primary sidebar) and contents (secondary sidebar) buttons of the article header open their
    sidebars; there is no top bar with a second search field."""
    probe, shots = PageProbe(browser, server, viewport=PHONE), tmp_path_factory.mktemp('phone')
    p = probe.open('momentum.html')
    assert p.evaluate("() => { const h = document.querySelector('#pst-header'); return h ? h.getBoundingClientRect().height : 0; }") == 0
    searches = p.evaluate("""() => Array.from(document.querySelectorAll('.search-button, .search-button-field'))
        .filter(e => e.getBoundingClientRect().width > 0 && getComputedStyle(e).visibility !== 'hidden').length""")
    assert searches == 1, f"{searches} search buttons or fields on the phone page"
    for button, dialog, link in [('.primary-toggle', '#pst-primary-sidebar-modal', 'RMSProp'),
                                 ('.secondary-toggle', '#pst-secondary-sidebar-modal', 'The formula')]:
        p.locator(f'.bd-header-article {button}').click()
        p.wait_for_function(f"() => document.querySelector('{dialog}').open", timeout=5000)
        target = p.locator(f'{dialog} a', has_text=link).first
        target.wait_for(state='visible', timeout=5000)
        box = target.bounding_box()
        assert box and 0 <= box['x'] and box['x'] + box['width'] <= PHONE['width'], f"{link!r} is off screen: {box}"
        p.screenshot(path=str(shots/f"{button.strip('.')}.png"))
        p.keyboard.press('Escape')
        p.wait_for_function(f"() => !document.querySelector('{dialog}').open", timeout=5000)
    assert not probe.problems, probe.problems
    SUMMARY.append(f"docs site: phone screenshots with the menu and contents open in {shots}")
    probe.ctx.close()


@pytest.mark.parametrize('word,page', SEARCHES.items())
def test_search_finds_chapter_words(site, server, browser, word, page):
    probe = PageProbe(browser, server)
    p = probe.open(f'search.html?q={word}')
    p.wait_for_function("() => document.querySelector('#search-results') && "
                        "/Search finished/.test(document.querySelector('#search-results').innerText)", timeout=15000)
    hits = p.evaluate("() => Array.from(document.querySelectorAll('#search-results li a')).map(a => a.getAttribute('href'))")
    assert any(h.split('?')[0].split('#')[0].endswith(page) for h in hits), f"searching {word!r} found {hits}, not {page}"
    assert not probe.problems, probe.problems
    probe.ctx.close()


def test_lab_page_shows_the_animation(site):
    "The optimizer lab's page carries its GIF inside the page: an animation of many frames, nothing to fetch."
    import base64, io
    from PIL import Image
    srcs = re.findall(r'<img [^>]*?src="data:image/gif;base64,([A-Za-z0-9+/=]+)"', (site/'lab.html').read_text(encoding='utf-8'))
    assert srcs, "lab.html shows no GIF"
    with Image.open(io.BytesIO(base64.b64decode(srcs[0]))) as gif:
        assert gif.format == 'GIF' and gif.n_frames >= 30 and gif.size[0] > 300
