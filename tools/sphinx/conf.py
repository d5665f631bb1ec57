"""Sphinx settings for fastnote's offline site; `tools/docs.py site` writes the sources and calls Sphinx."""
import sys
from pathlib import Path
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

project = 'fastnote'
author = 'fastnote developers'
copyright = '2026, fastnote developers'

extensions = ['myst_nb', 'sphinx-mathjax-offline']   # MathJax is copied into the site: no CDN

nb_execution_mode = 'off'               # the notebooks' stored outputs are the page
nb_merge_streams = True
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'attrs_inline', 'attrs_block']
myst_heading_anchors = 4                # `page.html#sgd_step`, as nbdev's links expect
myst_heading_slug_func = 'docs.quarto_slug'

html_theme = 'sphinx_book_theme'
html_title = 'fastnote'
html_favicon = '_static/favicon.svg'
html_context = dict(default_mode='light')
html_static_path = ['_static']
html_css_files = ['fastnote.css']
html_theme_options = dict(show_toc_level=2, home_page_in_toc=True, use_download_button=False,
                          use_fullscreen_button=False,
                          # No top navbar: the book theme has its buttons (menu, colour mode, search, contents) in the
                          # article header and a search field in the sidebar. pydata-sphinx-theme adds a search field
                          # to the navbar unless told not to, and with it menu and contents buttons that come first in
                          # the page, hidden: its scripts bind only the first `.primary-toggle` and `.secondary-toggle`,
                          # so the visible buttons did nothing. With nothing in it the navbar is empty (fastnote.css
                          # hides it; the theme's scripts still measure it).
                          navbar_persistent=[])
html_show_sourcelink = False
html_use_index = False                  # no Sphinx domain objects: the index page would be empty
html_copy_source = False


def page_title_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    """`{page-title}`Adam``: the text, as it is. docs.py writes each page's title with it: the title's words are then
    not heading text to MyST, so the title takes no anchor, and `adam.html#adam` is Adam's API entry (as on nbdev's
    Quarto site, where the title is not a section either), not the top of the page."""
    from docutils import nodes
    return [nodes.Text(text)], []


def setup(app):
    app.add_role('page-title', page_title_role)
