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
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'attrs_inline']
myst_heading_anchors = 4                # `page.html#sgd_step`, as nbdev's links expect
myst_heading_slug_func = 'docs.quarto_slug'

html_theme = 'sphinx_book_theme'
html_title = 'fastnote'
html_favicon = '_static/favicon.svg'
html_context = dict(default_mode='light')
html_static_path = ['_static']
html_css_files = ['fastnote.css']
html_theme_options = dict(show_toc_level=2, home_page_in_toc=True, use_download_button=False,
                          use_fullscreen_button=False)
html_show_sourcelink = False
html_use_index = False                  # no Sphinx domain objects: the index page would be empty
html_copy_source = False
