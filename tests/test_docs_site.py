"""The documentation site builds offline and works in a real browser (headless Chromium).

Every page loads with no JavaScript error and no failed or off-site request, every image has loaded, math is
typeset, each exported name has its API entry where nbdev's links point (`page.html#name`), internal links land on
a page and an anchor that exist, and search finds words from the chapters. Outside CI a missing browser skips the
browser part; in CI (`CI=true`) it is a failure.
"""
import html, functools, html.parser, http.server, importlib, inspect, os, re, shutil, threading, time
from pathlib import Path
from urllib.parse import urljoin, urlsplit
import pytest
from conftest import ROOT, SUMMARY

from fastnote._modidx import d as modidx

CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--disable-default-apps']
# a word that only a chapter's prose has, and the page search must find it on
SEARCHES = {'curvature': 'optimizer.html', 'canyon': 'momentum.html', 'lockstep': 'rmsprop.html', 'signum': 'adam.html',
            'overfitting': 'decay.html', 'mixup': 'callbacks.html', 'tqdm': 'learner.html', 'annealing': 'schedule.html', 'amplifies': 'checkpoint.html', 'patience': 'everyday.html', 'replicas': 'distributed.html', 'banana': 'lab.html',
            'leaderboard': 'demo.html'}


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    from docs import build_site
    tmp, start = tmp_path_factory.mktemp('site'), time.perf_counter()
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
            assert re.search(rf'<span class="n[fc]">{re.escape(name)}</span>', text), f"{sym}: no signature on {page}"
            doc = inspect.getdoc(functools.reduce(getattr, qualname.split('.'), mod)) or ''
            plain = re.match(r"[\w ,.'-]*", doc).group(0).strip()  # the docstring's words before any markup
            assert len(plain) >= 10, f"{sym}: its docstring is missing or starts with markup: {doc[:40]!r}"
            shown = html.unescape(text).replace('\u2019', "'")       # Sphinx may curl apostrophes
            assert plain in shown, f"{sym}: its docstring is not shown on {page}"


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
    def __init__(self, browser, base:str):
        self.base, self.problems = base, []
        self.ctx = browser.new_context()
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
    srcs = re.findall(r'<img src="data:image/gif;base64,([A-Za-z0-9+/=]+)"', (site/'lab.html').read_text(encoding='utf-8'))
    assert srcs, "lab.html shows no GIF"
    with Image.open(io.BytesIO(base64.b64decode(srcs[0]))) as gif:
        assert gif.format == 'GIF' and gif.n_frames >= 30 and gif.size[0] > 300
