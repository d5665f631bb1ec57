"""Build fastnote's documentation site and README from `nbs/`, offline and without Quarto.

    python tools/docs.py site [OUT]     # the HTML site, into OUT (default: _docs)
    python tools/docs.py readme [OUT]   # README.md from nbs/index.ipynb (default: README.md)

nbdev's own notebook processing (`nbdev.serve.proc_nbs`) does the nbdev part: hidden cells go, directives are
stripped, `show_doc` is rendered, names in backticks become links. What it leaves for Quarto, this file turns into
what Sphinx + myst-nb read: the front matter becomes a title, Quarto cell options become myst-nb tags, nbdev's links
become links between pages, and pages are named as nbdev names them (`02_momentum.ipynb` -> `momentum.html`) so that
`page.html#symbol` links work. Sphinx renders the stored outputs; nothing is executed at render time.

The Quarto cell options it follows: `echo`, `output`, `include`, `code-fold` (`true`: the code in a closed <details>,
`show`: open, `false`: plain) with `code-summary`, and `fig-alt` (the alt text of the cell's pictures). Cells marked
`#| exports` fold closed unless they say `#| code-fold: show` or `false`.

`show_doc`'s entries are tidied (see `api_entry`): a class reads `class Name(...)`, a property `@property`, an
exception is one line, `__call__` keeps its underscores, inferred annotations (`x:NoneType=None`) go, and internal
helpers (`_name`) get no heading.
"""
import html, inspect, json, re, shutil, sys
from contextlib import contextmanager
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
SPHINX_CONF = Path(__file__).resolve().parent/'sphinx'


def quarto_slug(text:str)->str:
    "The id pandoc (so Quarto, so nbdev's doc links) gives a heading: `### sgd_step` -> `sgd_step`."
    text = re.sub(r'`|\*|\[|\]\([^)]*\)', '', text).strip().lower()
    text = re.sub(r'[^\w\s.-]', '', text)
    text = re.sub(r'\s+', '-', text)
    return re.sub(r'^[^a-z]+', '', text)


def page_name(nb_name:str)->str:
    "The page nbdev gives a notebook: `02_momentum.ipynb` -> `momentum`."
    from nbdev.config import nbpath2html
    return nbpath2html(Path(nb_name)).stem


def doc_url()->str:
    "Where the hosted docs live, as nbdev writes it into absolute links (ends with `/`)."
    from nbdev.config import get_config
    cfg = get_config(ROOT)
    return f"{cfg.doc_host}{cfg.doc_baseurl.rstrip('/')}/" if cfg.doc_host else ''


def joined(text)->str:
    "Notebook text fields are a string or a list of lines."
    return ''.join(text) if isinstance(text, list) else text


_re_option = re.compile(r'^#\|\s*([\w-]+)\s*(?::\s*(.*?))?\s*$')

def option_value(v)->str:
    "A Quarto option's value as written, without the quotes around it: `'\"Exported source\"'` -> `'Exported source'`."
    v = 'true' if v is None else v.strip()
    return v[1:-1] if len(v) >= 2 and v[0] == v[-1] and v[0] in '"\'' else v

def split_options(src:str):
    "Quarto cell options (`#| echo: false`) at the top of a code cell, and the code after them; a later option wins."
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_option.match(lines[0])):
        opts[m.group(1)] = option_value(m.group(2))
        lines.pop(0)
    return opts, '\n'.join(lines)


def is_false(v)->bool: return str(v).strip().lower() in ('false', 'no', '0')


# what nbdev's `add_fold` puts above every `#| exports` cell; the cell's own options come after it
NBDEV_FOLD = '#| code-fold: show\n#| code-summary: "Exported source"\n'

def code_fold(opts:dict)->tuple:
    "How a cell's code folds, as Quarto folds it: `(None, '')` (not folded), or `('open'|'closed', summary)`."
    exports = 'exports' in opts and not is_false(opts['exports'])
    fold = opts.get('code-fold', 'true' if exports else 'false').strip().lower()
    if is_false(fold) or opts.get('echo', '').lower() == 'false': return None, ''
    summary = opts.get('code-summary') or ('Exported source' if exports else 'Code')
    return ('open' if fold == 'show' else 'closed'), summary


def fence(code:str, info:str='python')->str:
    "`code` in a backtick fence longer than any run of backticks inside it."
    n = max([3] + [len(r) + 1 for r in re.findall(r'`{3,}', code)])
    return f"{'`' * n}{info}\n{code}\n{'`' * n}"


def folded_code(code:str, fold:str, summary:str)->str:
    "Markdown for code inside a <details> element: closed, or open when `fold` is 'open'."
    opened = ' open' if fold == 'open' else ''
    return (f'<details class="code-fold"{opened}>\n<summary>{html.escape(summary)}</summary>\n\n'
            f'{fence(code)}\n\n</details>')


def with_alt(output:dict, alt:str)->dict:
    "A copy of an HTML output whose <img> elements carry `alt` (the cell's `fig-alt`); other outputs as they are."
    data = output.get('data', {})
    if not alt or 'text/html' not in data: return output
    def set_alt(m):
        tag = re.sub(r'\salt\s*=\s*("[^"]*"|\'[^\']*\')', '', m.group(1))
        return f'{tag} alt="{html.escape(alt)}"{m.group(2)}'
    new = re.sub(r'(<img\b[^>]*?)\s*(/?>)', set_alt, joined(data['text/html']))
    return {**output, 'data': {**data, 'text/html': new}}


_re_link_attrs = re.compile(r'(\[[^\]]*\]\([^)\s]+\))\{[^}]*\}')
_re_callout = re.compile(r'^:::+\s*\{\.callout-(\w+)[^}]*\}\s*\n(.*?)\n:::+\s*$', re.MULTILINE | re.DOTALL)
_re_eq_label = re.compile(r'\$\$\s*\{#eq-([\w-]+)\}')
_re_eq_ref = re.compile(r'@eq-([\w-]+)')

def quarto_md_to_myst(md:str)->str:
    "Translate the Quarto-only markdown we allow: callouts become admonitions, `{#eq-x}` labels become MyST labels."
    md = _re_link_attrs.sub(r'\1{.external-source}', md)   # show_doc's `[source](url){target=...}`
    kinds = dict(note='note', tip='tip', warning='warning', caution='caution', important='important')
    md = _re_callout.sub(lambda m: f"```{{{kinds.get(m.group(1), 'note')}}}\n{m.group(2)}\n```", md)
    md = _re_eq_label.sub(lambda m: f'$$ (eq-{m.group(1)})', md)
    return _re_eq_ref.sub(lambda m: f'{{eq}}`eq-{m.group(1)}`', md)


def relink(md:str, pages:dict, base_url:str, to:str)->str:
    "Point links at notebooks or at the hosted docs to the right target: `to` is 'site' or 'readme'."
    def fix(m):
        page, sep, anchor = m.group(1).partition('#')
        if base_url and page.startswith(base_url):       # nbdev's absolute link to a name on the hosted docs
            if to == 'readme': return m.group(0)
            page = page[len(base_url):].removesuffix('.html').removesuffix('.md') or 'index'
        elif page in pages:                              # a link to a notebook, as editors write it
            page = f'nbs/{page}' if to == 'readme' else pages[page]
        else: return m.group(0)
        return f"]({page}{'.ipynb' if to == 'site' else ''}{sep}{anchor})"
    return re.sub(r'\]\(([^)\s]+)\)', fix, md)


def read_front_matter(src:str)->dict:
    "The YAML block nbdev puts in a raw cell at the top of a processed notebook."
    import yaml
    return yaml.safe_load(src.strip().strip('-')) or {}


API_MARK = re.compile(r'^<!-- fastnote-api (\{.*?\}) -->[ \t]*\n?', re.M)

def api_kind(sym)->dict:
    "What `show_doc(sym)` documents: `kind` (function, classmethod, property, class, exception) and a class's `bases`."
    import functools
    if isinstance(sym, (property, functools.cached_property)): return dict(kind='property')
    if inspect.isclass(sym):
        bases = [getattr(b, '__name__', str(b)) for b in vars(sym).get('__orig_bases__', sym.__bases__) if b is not object]
        return dict(kind='exception' if issubclass(sym, BaseException) else 'class', bases=bases)
    if inspect.ismethod(sym) and inspect.isclass(sym.__self__): return dict(kind='classmethod')
    return dict(kind='function')


def kind_renderer(base):
    "nbdev's show_doc renderer `base`, writing what `api_kind` says into its markdown, for `api_entry` to read."
    class KindRenderer(base):
        def __init__(self, sym, *args, **kwargs):
            self.api = api_kind(sym)
            super().__init__(sym, *args, **kwargs)
        def _repr_markdown_(self): return f"<!-- fastnote-api {json.dumps(self.api)} -->\n" + super()._repr_markdown_()
    return KindRenderer


def shown_once(def_names):
    """nbdev's `_def_names` (which names `add_show_docs` documents after an exported cell), leaving out names that a
    `show_doc` cell already documents: nbdev compares `Learner.fit` with `fit` and documents `@patch`ed methods twice."""
    return lambda cell, shown: [n for n in def_names(cell, shown) if n not in shown]


_re_show_doc = re.compile(r'\A\s*(?:---[ \t]*\n)?\s*(?P<source>\[source\]\([^)\s]*\)(?:\{[^}\n]*\})?)?\s*'
                          r'^(?P<level>#{1,6})[ \t]+(?P<name>[^\n]+?)[ \t]*\n\s*'
                          r'^(?P<fence>`{3,})python[ \t]*\n(?P<sig>.*?)\n(?P=fence)[ \t]*(?:\n|\Z)(?P<doc>.*)\Z', re.S | re.M)

_SIG_FIXES = [(re.compile(a), b) for a, b in [
    (r':NoneType(?==)', ''),                               # fastcore infers `x:NoneType=None` from the default
    (r':function(?==)', ''),                               # ... and `f:function=trainable_params`
    (r'->NoneType\b', '->None'),
    (r'\b__main__\.', ''),                                 # a class defined in the notebook being rendered
    (r'\bfastnote\.\w+\.(?=[A-Za-z_])', ''),               # `fastnote.callback.DataLoaders` -> `DataLoaders`
    (r'\btorch\.nn\.modules\.\w+\.(?=[A-Z])', 'nn.'),      # `torch.nn.modules.module.Module` -> `nn.Module`
    (r'\btorch\.optim\.\w+\.(?=[A-Z])', 'torch.optim.'),   # `torch.optim.optimizer.Optimizer`
    (r'\bpathlib\.(?=Path\b)', ''),
]]

def clean_signature(sig:str)->str:
    "A show_doc signature with the annotations its author wrote: inferred `NoneType`s gone, module paths shortened."
    def fix(line):
        code, sep, comment = line.partition(' # ')         # the parameter's docment stays as written
        for pat, rep in _SIG_FIXES: code = pat.sub(rep, code)
        return code + sep + comment
    return '\n'.join(fix(l) for l in sig.split('\n'))


def escape_md(text:str)->str:
    "`text` shown literally by markdown: `Learner.__call__` stays `Learner.__call__`, not Learner.**call**."
    return re.sub(r'([\\`*_\[\]{}<>#|~])', r'\\\1', text)


def is_internal(name:str)->bool:
    "Whether `name` (`f`, `Cls.method`) is an internal helper: its last part starts with `_` and is no dunder."
    last = name.split('.')[-1]
    return last.startswith('_') and not (last.startswith('__') and last.endswith('__'))


def api_entry(md:str)->str:
    """The markdown of one `show_doc` output, tidied for the page. Public names keep nbdev's heading (so `page.html#name`
    works), then the signature and the docstring; a class reads `class Name(...)`, a property and a classmethod carry
    their decorator, an exception is one line, and an internal helper gets a small label instead of a heading."""
    mark = API_MARK.search(md)
    info = json.loads(mark.group(1)) if mark else {}
    md = API_MARK.sub('', md)
    m = _re_show_doc.match(md)
    if not m: return re.sub(r'^\s*---\s*\n', '', md)      # not the shape nbdev writes: leave it as it is
    name, kind, bases = m['name'].strip(), info.get('kind', 'function'), info.get('bases', [])
    source, doc = (m['source'] or '').strip(), m['doc'].strip()
    short = name.split('.')[-1]
    sig = clean_signature(m['sig'])
    if kind == 'exception':
        base = f"({', '.join(bases)})" if bases else ''
        line = ' '.join(p for p in [source, f"[exception]{{.api-kind}} `{name}{base}`{{.api-name}}" + (':' if doc else ''),
                                    doc] if p)
        return f":::{{container}} api-entry api-exception\n({quarto_slug(name)})=\n{line}\n:::"
    if kind == 'class':
        sig = re.sub(r'\A(?:async )?def ', 'class ', sig)
        if re.fullmatch(r'class \w+\(\s*\*args, \*\*kwargs\s*\)(?:->[^:]*)?:', sig):   # no constructor arguments of its own
            sig = f"class {short}({', '.join(bases)}):" if bases else f"class {short}:"
    elif kind in ('property', 'classmethod'): sig = f'@{kind}\n{sig}'
    block = f"{fence(sig, '{code-block} python')}".replace('\n', '\n:class: api-signature\n', 1)
    if is_internal(name):
        head = ' '.join(p for p in [source, f"`{name}`{{.api-name}} [internal]{{.api-kind}}"] if p)
        return '\n\n'.join([":::{container} api-entry api-internal", head, block, doc]).rstrip() + '\n:::'
    return '\n\n'.join(p for p in [source, f"{m['level']} {escape_md(name)}", block, doc] if p)


class PageCell(NamedTuple):
    "One cell of a page: markdown, or code with its outputs, myst-nb tags, how it folds and its pictures' alt text."
    kind: str                   # 'markdown' or 'code'
    source: str
    outputs: tuple = ()
    tags: tuple = ()
    fold: str = None            # None, 'closed' or 'open' (`code-fold: true` / `show`)
    summary: str = ''           # the text of the fold's <summary>
    alt: str = ''               # `fig-alt`


def code_page_cell(cell, pages:dict, base_url:str, to:str):
    "What a processed code cell shows, as a `PageCell`, or None when it shows nothing."
    src = joined(cell['source'])
    if src.startswith(NBDEV_FOLD) and 'exports' in split_options(src)[0]:
        src = src[len(NBDEV_FOLD):]   # nbdev's own `code-fold: show` for `#| exports`: `code_fold` decides instead
    opts, code = split_options(src)
    if is_false(opts.get('include', '')): return None
    outputs = [] if is_false(opts.get('output', '')) else cell.get('outputs', [])
    markdown_out = [joined(o['data']['text/markdown']) for o in outputs if 'text/markdown' in o.get('data', {})]
    if is_false(opts.get('echo', '')) and opts.get('output', '').lower() == 'asis' and markdown_out:
        # show_doc: its markdown becomes part of the page, so its heading is a real section with an anchor
        md = '\n\n'.join(api_entry(o) if to == 'site' else re.sub(r'^\s*---\s*\n', '', API_MARK.sub('', o))
                         for o in markdown_out)
        return PageCell('markdown', relink(quarto_md_to_myst(md), pages, base_url, to))
    if not code.strip() and not outputs: return None
    tags = ('remove-input',) if is_false(opts.get('echo', '')) else ()
    fold, summary = code_fold(opts) if code.strip() else (None, '')
    return PageCell('code', code, tuple(outputs), tags, fold, summary, opts.get('fig-alt', '').strip())


def page_cells(proc_nb:dict, pages:dict, base_url:str, to:str):
    "Title, description and cells (`PageCell`s) of a processed notebook, ready for `to`."
    title, desc, cells = '', '', []
    for cell in proc_nb['cells']:
        src = joined(cell['source'])
        if cell['cell_type'] == 'raw' and src.lstrip().startswith('---'):
            fm = read_front_matter(src)
            title, desc = fm.get('title', ''), fm.get('description', '')
        elif cell['cell_type'] == 'markdown' and not src.strip().startswith('<!-- WARNING'):
            cells.append(PageCell('markdown', relink(quarto_md_to_myst(src), pages, base_url, to)))
        elif cell['cell_type'] == 'code' and (shown := code_page_cell(cell, pages, base_url, to)):
            cells.append(shown)
    return title, desc, cells


def page_title(title:str, page_id:str='page')->str:
    """The page's title heading. It takes no anchor of its own, so a name documented on its page under the same words
    (the `Adam` entry of the page 'Adam') keeps the anchor nbdev links to: the heading's id is `title-<page>` and its
    text is in conf.py's `page-title` role, which MyST does not make a slug of."""
    if '`' in title or not title: return f"# {title}"
    return f"{{#title-{page_id}}}\n# {{page-title}}`{title}`"


def to_site_notebook(proc_nb:dict, pages:dict, base_url:str, toc:list=None, page_id:str='page')->dict:
    "A notebook myst-nb renders as one page: title and description first, Quarto options as tags, clean metadata."
    title, desc, cells = page_cells(proc_nb, pages, base_url, 'site')
    head = page_title(title, page_id) + (f"\n\n{desc}" if desc else '')
    out = [dict(cell_type='markdown', metadata={}, source=head)]
    for c in cells:
        if c.kind == 'markdown':
            out.append(dict(cell_type='markdown', metadata={}, source=c.source)); continue
        meta, tags = ({'mystnb': {'image': {'alt': c.alt}}} if c.alt else {}), list(c.tags)
        outputs = [with_alt(o, c.alt) for o in c.outputs]
        if c.fold:   # the code in a <details> of its own; the outputs, if any, in a cell that shows only them
            out.append(dict(cell_type='markdown', metadata={}, source=folded_code(c.source, c.fold, c.summary)))
            if not outputs: continue
            tags.append('remove-input')
        if tags: meta['tags'] = tags
        out.append(dict(cell_type='code', metadata=meta, source=c.source, outputs=outputs, execution_count=None))
    if toc:
        out.append(dict(cell_type='markdown', metadata={},
                        source='```{toctree}\n:hidden:\n:caption: Chapters\n\n' + '\n'.join(toc) + '\n```'))
    for i, c in enumerate(out): c['id'] = f'c{i:04d}'
    return dict(cells=out, metadata=dict(kernelspec=dict(display_name='Python 3', language='python', name='python3'),
                                         language_info=dict(name='python')), nbformat=4, nbformat_minor=5)


def output_markdown(o)->str:
    "A code cell output as README markdown: markdown as is, text fenced, '' for images and other rich outputs."
    data = o.get('data', {})
    if 'text/markdown' in data: return joined(data['text/markdown']).rstrip()
    if any(k.startswith('image/') or k == 'text/html' for k in data): return ''   # its text/plain is only a repr
    txt = joined(o['text']) if o.get('output_type') == 'stream' else joined(data.get('text/plain', ''))
    return f"```\n{txt.rstrip()}\n```" if txt.strip() else ''


def readme_text(proc_nb:dict, pages:dict, base_url:str)->str:
    "Markdown for README.md from the processed index notebook: no directives, no hidden cells, outputs as text."
    title, desc, cells = page_cells(proc_nb, pages, base_url, 'readme')
    parts = [f"# {title}", f"> {desc}" if desc else '',
             "<!-- Generated from nbs/index.ipynb by `make readme`: edit the notebook, not this file. -->"]
    for c in cells:
        if c.kind == 'markdown': parts.append(c.source.strip()); continue
        parts.append(fence(c.source.strip()))
        parts += [output_markdown(o) for o in c.outputs]
    return '\n\n'.join(p for p in parts if p) + '\n'


@contextmanager
def patched(obj, name:str, value):
    "Set `obj.name` to `value` for the duration of a `with` block."
    old = getattr(obj, name)
    setattr(obj, name, value)
    try: yield
    finally: setattr(obj, name, old)


def process_notebooks(file_glob:str='')->Path:
    """Run nbdev's notebook processing on `nbs/` (no Quarto involved); returns the folder of processed notebooks.
    It runs in this process (`n_workers=0`), so show_doc renders with `kind_renderer` and `add_show_docs` skips
    `@patch`ed methods a notebook documents itself (`shown_once`)."""
    import nbdev.processors, nbdev.showdoc
    from fastcore.xtras import working_directory
    from nbdev.serve import proc_nbs
    with working_directory(ROOT), \
         patched(nbdev.processors, '_def_names', shown_once(nbdev.processors._def_names)), \
         patched(nbdev.showdoc, 'BasicMarkdownRenderer', kind_renderer(nbdev.showdoc.BasicMarkdownRenderer)):
        return Path(proc_nbs(str(NBS), n_workers=0, force=True, file_glob=file_glob))


def notebook_pages()->dict:
    "`{notebook file name: page name}` for every notebook in `nbs/`, in the order of the sidebar (file names)."
    return {p.name: page_name(p.name) for p in sorted(NBS.glob('*.ipynb')) if not p.name.startswith(('_', '.'))}


def write_sources(proc:Path, dest:Path, pages:dict):
    "Write the myst-nb sources of every page into `dest`."
    if dest.exists(): shutil.rmtree(dest)
    dest.mkdir(parents=True)
    base_url, toc = doc_url(), [p for p in pages.values() if p != 'index']
    for nb_name, page in pages.items():
        nb = json.loads((proc/nb_name).read_text(encoding='utf-8'))
        site_nb = to_site_notebook(nb, pages, base_url, toc if page == 'index' else None, page)
        (dest/f'{page}.ipynb').write_text(json.dumps(site_nb, indent=1), encoding='utf-8')


def build_site(out=ROOT/'_docs', work=ROOT/'_build')->Path:
    "Build the HTML site into `out`; Sphinx warnings are errors. Returns `out`."
    from sphinx.cmd.build import build_main
    out, work = Path(out).resolve(), Path(work).resolve()
    pages = notebook_pages()
    write_sources(process_notebooks(), work/'site_src', pages)
    html = work/'html'   # myst-nb writes its image files beside Sphinx's output folder: keep both in `work`
    if html.exists(): shutil.rmtree(html)   # Sphinx keeps the page of a notebook that was renamed or removed
    args = ['-b', 'html', '-q', '-W', '--keep-going', '-c', str(SPHINX_CONF), '-d', str(work/'doctrees'),
            str(work/'site_src'), str(html)]
    if build_main(args) != 0: raise SystemExit("Sphinx failed to build the site (see the messages above)")
    if out.exists(): shutil.rmtree(out)
    shutil.copytree(html, out)
    return out


_re_fence = re.compile(r'^(?P<fence>`{3,}).*?^(?P=fence)[ \t]*$', re.M | re.S)
_re_code = re.compile(f'{_re_fence.pattern}|`+[^`\\n]*?`+', re.M | re.S)   # fenced blocks and inline code
_re_link = re.compile(f'(?P<code>{_re_code.pattern})|(?P<bang>!?)\\[(?P<text>[^\\]]*)\\]\\((?P<target>[^)\\s]+)\\)', re.M | re.S)

def outside_code(md:str, f)->str:
    "`md` with `f` applied to its prose only: fenced blocks and inline code stay as they are."
    parts, last = [], 0
    for m in _re_code.finditer(md):
        parts += [f(md[last:m.start()]), m.group(0)]
        last = m.end()
    return ''.join(parts + [f(md[last:])])


def absolute_links(md:str, pages:dict, base_url:str, repo_url:str, branch:str='main')->str:
    """Relative links made absolute, for the README on a package index: a notebook's (`nbs/02_momentum.ipynb#x`) to its
    page on the hosted docs, any other file's to the repository (a picture's to its raw file)."""
    def fix(m):
        bang, text, target = m['bang'], m['text'], m['target']
        if m['code'] or re.match(r'[a-z][\w+.-]*:|#|/', target): return m.group(0)   # code, absolute, or an anchor
        path, sep, anchor = target.partition('#')
        if path.startswith('nbs/') and path[4:] in pages and base_url: url = f"{base_url}{pages[path[4:]]}.html"
        else: url = f"{repo_url}/{'raw' if bang else 'blob'}/{branch}/{path}"
        return f"{bang}[{text}]({url}{sep}{anchor})"
    return _re_link.sub(fix, md)   # a link's text may hold code: [`Adam`](...)


# TeX a README may hold, as text: a package index shows `$...$` as it is written
_TEX_SYMBOLS = {r'\times': '×', r'\cdot': '·', r'\approx': '≈', r'\leq': '≤', r'\le': '≤', r'\geq': '≥', r'\ge': '≥',
                r'\neq': '≠', r'\pm': '±', r'\to': '→', r'\infty': '∞', r'\nabla': '∇', r'\sum': 'Σ', r'\sqrt': '√',
                r'\alpha': 'α', r'\beta': 'β', r'\gamma': 'γ', r'\epsilon': 'ε', r'\varepsilon': 'ε', r'\eta': 'η',
                r'\theta': 'θ', r'\lambda': 'λ', r'\mu': 'μ', r'\sigma': 'σ', r'\,': ' ', r'\;': ' ', r'\quad': ' '}
_re_inline_math = re.compile(r'(?<![\\$])\$(?=\S)([^$\n]+?)(?<=\S)\$(?![\d$])')
_re_display_math = re.compile(r'\$\$(.+?)\$\$', re.S)

def tex_as_text(tex:str)->str:
    "A TeX formula as plain text: `\\frac{a}{b}` is `(a)/(b)`, `\\sqrt{v}` is `√(v)`, `\\beta_1` is `β_1`, braces go."
    rules = [(r'\\frac\{([^{}]*)\}\{([^{}]*)\}', r'(\1)/(\2)'), (r'\\sqrt\{([^{}]*)\}', r'√(\1)'), (r'\\hat\{([^{}]*)\}', '\\1\u0302'),
             (r'\\(?:mathrm|text|mathbf|operatorname)\{([^{}]*)\}', r'\1')]
    while True:                                            # innermost first: `\frac{m}{\sqrt{v}}`
        before = tex
        for pat, rep in rules: tex = re.sub(pat, rep, tex)
        if tex == before: break
    tex = re.sub(r'\\[A-Za-z]+|\\[,;]', lambda m: _TEX_SYMBOLS.get(m.group(0), m.group(0)), tex)
    return re.sub(r'[{}]', '', tex).strip()

def math_as_text(md:str)->str:
    "`$...$` and `$$...$$` made readable where no one renders TeX: inline math as text, display math as a text block."
    def prose(t):
        t = _re_display_math.sub(lambda m: f"\n```\n{tex_as_text(m.group(1))}\n```\n", t)
        return _re_inline_math.sub(lambda m: tex_as_text(m.group(1)), t)
    return outside_code(md, prose)


def build_readme(out=ROOT/'README.md')->str:
    """Write README.md from `nbs/index.ipynb`; returns its text. It is also the package's page on PyPI, which renders
    neither relative links nor TeX: links are made absolute and math is written as text."""
    from nbdev.config import get_config
    cfg, pages = get_config(ROOT), notebook_pages()
    proc = process_notebooks('index.ipynb')
    txt = readme_text(json.loads((proc/'index.ipynb').read_text(encoding='utf-8')), pages, doc_url())
    txt = math_as_text(absolute_links(txt, pages, doc_url(), cfg.git_url.rstrip('/'), cfg.branch))
    if out is not None: Path(out).write_text(txt, encoding='utf-8')
    return txt


if __name__ == '__main__':
    what, *rest = sys.argv[1:] or ['site']
    if what == 'site': print(f"site written to {build_site(*rest)}")
    elif what == 'readme': build_readme(*rest); print(f"README written to {rest[0] if rest else 'README.md'}")
    else: raise SystemExit(f"unknown command {what!r}: expected 'site' or 'readme'")
