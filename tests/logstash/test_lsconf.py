"""The test-only config reader accepts and refuses what Logstash's grammar does.

Expectations come from `logstash-core/lib/logstash/compiler/lscl/lscl_grammar.treetop` of
elastic/logstash at v8.9.0 (before 8.15) and v8.19.20 (the pinned version); every case below was
also run through those two grammar files compiled with treetop 1.6.8, with the same answers.
"""

from __future__ import annotations

import pytest
from logstash_support import LOGSTASH_DIR
from lsconf import PINNED, ConfigSyntaxError, Grammar, parse

OLD = Grammar.LSCL_BEFORE_8_15
NEW = Grammar.LSCL_8_15

# The metrics pipeline's ruby filter as it was: a comment between two hash entries.
COMMENT_BETWEEN_HASH_ENTRIES = """
filter {
  ruby {
    path => "/usr/share/logstash/ruby/edge_metrics.rb"
    script_params => {
      "max_path_depth" => 3
      # No "node": the job runs on the host network, so the hostname is the node's own.
      "region" => "${REGION}"
    }
  }
}
"""

# (config, accepted before 8.15, accepted from 8.15)
CASES = [
    ('input { a { b => { "x" => 1 # c\n "y" => 2 } } }', False, True),
    ('input { a { b => { # c\n "x" => 1 "y" => 2 # d\n } } }', True, True),
    ('input { a { b => {"x"=>1"y"=>2} } }', False, True),
    ("input { a {} }\n# a last comment without a newline", False, True),
    ("input { a {} }\n# a last comment with a newline\n", True, True),
    ("input { a { b => 1, c => 2 } }", False, False),  # no commas between settings
    ("input { a { b => 1# c\n c => 2 } }", False, False),  # whitespace must separate them
    ("input { a { b => 1 # c\n c => 2 } }", True, True),
    ('input { a { b => "x"c => 2 } }', False, False),
    ("input { a { b => x } }", False, False),  # a bareword has at least two characters
    ("input { a { b => [1 2] } }", False, False),
    ("input { a { b => [1, # c\n 2] } }", True, True),
    ("filter { if [a] notin [b] { x {} } }", False, False),
    ("filter { if [a] not  in [b] { x {} } }", True, True),
    ("filter { if [a,b] { x {} } }", False, False),
    ("filter { if [a] { x {} } # c\n else { y {} } }", True, True),
    ("filter { if [a]{x{}}else{y{}} }", True, True),
    ("filter { if len([a]) > 1 { x {} } }", True, True),
    ("output { a { b => 1 } } }", False, False),
]


def accepts(text: str, grammar: Grammar) -> bool:
    try:
        parse(text, grammar)
    except ConfigSyntaxError:
        return False
    return True


def test_the_pinned_grammar_is_the_8_15_one() -> None:
    assert PINNED is NEW


def test_a_comment_between_hash_entries_is_refused_before_8_15_with_its_position() -> None:
    with pytest.raises(ConfigSyntaxError, match=r"line 8, column 7 \(before 8\.15 grammar\)"):
        parse(COMMENT_BETWEEN_HASH_ENTRIES, OLD)
    (ruby,) = parse(COMMENT_BETWEEN_HASH_ENTRIES, NEW)
    assert ruby.settings["script_params"] == {"max_path_depth": 3, "region": "${REGION}"}


@pytest.mark.parametrize(("text", "before_8_15", "from_8_15"), CASES)
def test_accepts_and_refuses_what_logstash_does(
    text: str, before_8_15: bool, from_8_15: bool
) -> None:
    assert (accepts(text, OLD), accepts(text, NEW)) == (before_8_15, from_8_15)


@pytest.mark.parametrize("grammar", list(Grammar))
@pytest.mark.parametrize("name", ["ingest", "archive", "metrics"])
def test_every_pipeline_parses_under_both_grammars(name: str, grammar: Grammar) -> None:
    """Under the pinned one because that is what runs; under the older one too, so going back
    to an earlier 8.x image does not stop a pipeline from starting."""
    assert parse((LOGSTASH_DIR / "pipeline" / f"{name}.conf").read_text(), grammar)


def test_values_and_conditions_come_back_as_written() -> None:
    (first, second, third) = parse(
        """
        output {
          if "x" in [tags] { a { codec => line { format => "%{m}" } n => -1.5 b => true } }
          else if [f] != "" { b { h => { "k" => [1, 'two'] } } }
          else { c {} }
        }
        """
    )
    assert first.settings == {"codec": {"line": {"format": "%{m}"}}, "n": -1.5, "b": True}
    assert first.conditions == ('"x" in [tags]',)
    assert second.settings == {"h": {"k": [1, "two"]}}
    assert second.conditions == ('not ("x" in [tags])', '[f] != ""')
    assert third.conditions == ('not ("x" in [tags])', 'not ([f] != "")')
