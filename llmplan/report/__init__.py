"""report.html, one concept a module: `page` assembles the page (write_decision_report);
`sections`, `break_even_words` and `glossary` write its tables and prose, `html_text` the
escaping they share; `serving_charts` and `cost_charts` draw the charts, on `axes` and
`figure`, with `cost_items`' names and colours."""
