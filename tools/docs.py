"""Build fastnote's documentation site and README from `nbs/`, offline and without Quarto.

    python tools/docs.py site [OUT]     # the HTML site, into OUT (default: _docs)
    python tools/docs.py readme [OUT]   # README.md from nbs/index.ipynb (default: README.md)

nbdev's own notebook processing (`nbdev.serve.proc_nbs`) does the nbdev part: hidden cells go, directives are
stripped, `show_doc` is rendered, names in backticks become links. What it leaves for Quarto, this file turns into
what Sphinx + myst-nb read: the front matter becomes a title, Quarto cell options become myst-nb tags, nbdev's links
become links between pages, and pages are named as nbdev names them (`02_momentum.ipynb` -> `momentum.html`) so that
`page.html#symbol` links work. Sphinx renders the stored outputs; nothing is executed at render time.
"""
import json, re, shutil, sys
from pathlib import Path

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


_re_option = re.compile(r'^#\|\s*([\w-]+)\s*:\s*(.*?)\s*$')

def split_options(src:str):
    "Quarto cell options (`#| echo: false`) at the top of a code cell, and the code after them."
    lines, opts = src.splitlines(), {}
    while lines and (m := _re_option.match(lines[0])):
        opts[m.group(1)] = m.group(2).strip('\'"').lower()
        lines.pop(0)
    return opts, '\n'.join(lines)


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


def code_page_cell(cell, pages:dict, base_url:str, to:str):
    "What a processed code cell shows: `(kind, source, outputs, tags)`, or None when it shows nothing."
    opts, code = split_options(joined(cell['source']))
    if opts.get('include') == 'false': return None
    outputs = [] if opts.get('output') == 'false' else cell.get('outputs', [])
    markdown_out = [joined(o['data']['text/markdown']) for o in outputs if 'text/markdown' in o.get('data', {})]
    if opts.get('echo') == 'false' and opts.get('output') == 'asis' and markdown_out:
        # show_doc: its markdown becomes part of the page, so its heading is a real section with an anchor
        md = re.sub(r'^\s*---\s*\n', '', '\n\n'.join(markdown_out))   # Quarto's rule above each entry
        return 'markdown', relink(quarto_md_to_myst(md), pages, base_url, to), [], []
    if not code.strip() and not outputs: return None
    tags = ['remove-input'] if opts.get('echo') == 'false' else []
    if opts.get('code-summary'): tags.append('exported-source')   # nbdev's `#| exports` cells
    return 'code', code, outputs, tags


def page_cells(proc_nb:dict, pages:dict, base_url:str, to:str):
    "Title, description and cells (`(kind, source, outputs, tags)`) of a processed notebook, ready for `to`."
    title, desc, cells = '', '', []
    for cell in proc_nb['cells']:
        src = joined(cell['source'])
        if cell['cell_type'] == 'raw' and src.lstrip().startswith('---'):
            fm = read_front_matter(src)
            title, desc = fm.get('title', ''), fm.get('description', '')
        elif cell['cell_type'] == 'markdown' and not src.strip().startswith('<!-- WARNING'):
            cells.append(('markdown', relink(quarto_md_to_myst(src), pages, base_url, to), [], []))
        elif cell['cell_type'] == 'code' and (shown := code_page_cell(cell, pages, base_url, to)):
            cells.append(shown)
    return title, desc, cells


def to_site_notebook(proc_nb:dict, pages:dict, base_url:str, toc:list=None)->dict:
    "A notebook myst-nb renders as one page: title and description first, Quarto options as tags, clean metadata."
    title, desc, cells = page_cells(proc_nb, pages, base_url, 'site')
    head = f"# {title}\n\n{desc}" if desc else f"# {title}"
    out = [dict(cell_type='markdown', metadata={}, source=head)]
    for kind, src, outputs, tags in cells:
        meta = {'tags': tags} if tags else {}
        if kind == 'markdown': out.append(dict(cell_type='markdown', metadata=meta, source=src))
        else: out.append(dict(cell_type='code', metadata=meta, source=src, outputs=outputs, execution_count=None))
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
    for kind, src, outputs, _ in cells:
        if kind == 'markdown': parts.append(src.strip()); continue
        parts.append(f"```python\n{src.strip()}\n```")
        parts += [output_markdown(o) for o in outputs]
    return '\n\n'.join(p for p in parts if p) + '\n'


def process_notebooks(file_glob:str='')->Path:
    "Run nbdev's notebook processing on `nbs/` (no Quarto involved); returns the folder of processed notebooks."
    from fastcore.xtras import working_directory
    from nbdev.serve import proc_nbs
    with working_directory(ROOT):   # nbdev's processors read the config of the current folder
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
        site_nb = to_site_notebook(nb, pages, base_url, toc if page == 'index' else None)
        (dest/f'{page}.ipynb').write_text(json.dumps(site_nb, indent=1), encoding='utf-8')


def build_site(out=ROOT/'_docs', work=ROOT/'_build')->Path:
    "Build the HTML site into `out`; Sphinx warnings are errors. Returns `out`."
    from sphinx.cmd.build import build_main
    out, work = Path(out).resolve(), Path(work).resolve()
    pages = notebook_pages()
    write_sources(process_notebooks(), work/'site_src', pages)
    html = work/'html'   # myst-nb writes its image files beside Sphinx's output folder: keep both in `work`
    args = ['-b', 'html', '-q', '-W', '--keep-going', '-c', str(SPHINX_CONF), '-d', str(work/'doctrees'),
            str(work/'site_src'), str(html)]
    if build_main(args) != 0: raise SystemExit("Sphinx failed to build the site (see the messages above)")
    if out.exists(): shutil.rmtree(out)
    shutil.copytree(html, out)
    return out


def build_readme(out=ROOT/'README.md')->str:
    "Write README.md from `nbs/index.ipynb`; returns its text."
    pages = notebook_pages()
    proc = process_notebooks('index.ipynb')
    txt = readme_text(json.loads((proc/'index.ipynb').read_text(encoding='utf-8')), pages, doc_url())
    if out is not None: Path(out).write_text(txt, encoding='utf-8')
    return txt


if __name__ == '__main__':
    what, *rest = sys.argv[1:] or ['site']
    if what == 'site': print(f"site written to {build_site(*rest)}")
    elif what == 'readme': build_readme(*rest); print(f"README written to {rest[0] if rest else 'README.md'}")
    else: raise SystemExit(f"unknown command {what!r}: expected 'site' or 'readme'")
