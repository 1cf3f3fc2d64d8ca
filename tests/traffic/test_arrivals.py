

def test_durations_read_as_a_person_says_them() -> None:
    """Three figures, the unit chosen after rounding, hours past 100 whole: a 6.44 s trace
    had read "0.107381 min" and a 45-day one "1.08e+03 h"."""
    from llmplan.traffic.arrivals import duration_words
    assert [duration_words(s) for s in (6.44, 59.99, 1800, 3599.9, 5400, 1080 * 3600)] == \
        ["6.44 s", "1 min", "30 min", "1 h", "1.5 h", "1,080 h"]
