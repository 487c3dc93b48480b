"""styles.csv as A1111 writes it: reading (broken rows named by line), A1111's merge rules, saving that keeps rows."""

from __future__ import annotations

import threading

import pytest

from sdui.styles import Style, StyleStore, apply_styles, merge_prompts, parse_styles

A1111_FILE = (
    "\ufeffname,prompt,negative_prompt\r\n"
    'Cinematic,"cinematic still of {prompt}, film grain","cartoon, drawing"\r\n'
    "Masterpiece,masterpiece,\r\n"
    '"Quoted ""name""","a ""quoted"" word",""\r\n'
)


def test_reads_a1111_rows_bom_and_quotes():
    parsed = parse_styles(A1111_FILE)
    assert parsed.problems == []
    assert list(parsed.styles) == ["Cinematic", "Masterpiece", 'Quoted "name"']
    assert parsed.styles["Cinematic"] == Style("Cinematic", "cinematic still of {prompt}, film grain",
                                               "cartoon, drawing")
    assert parsed.styles['Quoted "name"'].prompt == 'a "quoted" word'


def test_tolerates_extra_columns_a_missing_negative_column_and_the_old_text_column():
    extra = parse_styles("name,prompt,negative_prompt,description\nA,x,y,shown nowhere\nB,z\n")
    assert extra.problems == [] and extra.styles["A"] == Style("A", "x", "y") and extra.styles["B"] == Style("B", "z")
    no_negative = parse_styles("name,prompt\nA,x\n")
    assert no_negative.styles["A"] == Style("A", "x", "")
    old = parse_styles("name,text\nA,old style\n")
    assert old.styles["A"].prompt == "old style"


def test_comments_and_blank_rows_are_skipped_silently():
    parsed = parse_styles("name,prompt,negative_prompt\n\n# a comment,x,y\nA,x,y\n")
    assert list(parsed.styles) == ["A"] and parsed.problems == []


def test_a_broken_row_is_named_by_its_line_and_the_others_still_load():
    text = ("name,prompt,negative_prompt\n"
            "Good,one,\n"
            'Broken,"never closed, and so on\n'
            "Too many,a,b,c,d\n"
            ",nameless\n"
            "After,two,neg\n")
    parsed = parse_styles(text)
    assert list(parsed.styles) == ["Good", "After"]
    assert len(parsed.problems) == 3
    line3, line4, line5 = parsed.problems
    assert line3.startswith("styles.csv line 3:") and "skipped" in line3
    assert line4.startswith("styles.csv line 4:") and "5 fields but the header has 3" in line4
    assert line5.startswith("styles.csv line 5:") and "no name" in line5


def test_a_header_without_a_name_column_is_reported():
    parsed = parse_styles("title,prompt\nA,x\n")
    assert parsed.styles == {} and "line 1" in parsed.problems[0] and "'name' column" in parsed.problems[0]


def test_merge_rules_as_a1111():
    assert merge_prompts("cinematic still of {prompt}, film grain", "a cat") == "cinematic still of a cat, film grain"
    assert merge_prompts("masterpiece", "a cat ") == "a cat, masterpiece"
    assert merge_prompts("masterpiece", "") == "masterpiece"
    assert merge_prompts("", "a cat") == "a cat"
    styles = [Style("A", "{prompt}, in the rain", "sunny"), Style("B", "masterpiece", "")]
    assert apply_styles("a cat", "blurry", styles) == ("a cat, in the rain, masterpiece", "blurry, sunny")


def test_store_rereads_a_file_changed_on_disk(tmp_path):
    path = tmp_path / "styles.csv"
    store = StyleStore(path)
    assert store.styles() == {} and store.problems() == []
    path.write_text("name,prompt,negative_prompt\nA,x,\n", encoding="utf-8")
    assert list(store.styles()) == ["A"]
    path.write_text("name,prompt,negative_prompt\nA,x,\nBee,y,\n", encoding="utf-8")
    assert list(store.styles()) == ["A", "Bee"]
    with pytest.raises(ValueError, match="no style 'Sea' in styles.csv \\(known: A, Bee\\)"):
        store.find(["A", "Sea"])


def test_save_creates_the_file_in_a1111s_format(tmp_path):
    store = StyleStore(tmp_path / "styles.csv")
    store.save(Style("Mine", "a, b", 'say "hi"'))
    assert (tmp_path / "styles.csv").read_bytes() == b'name,prompt,negative_prompt\nMine,"a, b","say ""hi"""\n'
    assert store.styles()["Mine"] == Style("Mine", "a, b", 'say "hi"')


def test_save_keeps_every_other_line_and_replaces_by_name(tmp_path):
    path = tmp_path / "styles.csv"
    original = ("name,prompt,negative_prompt,description\r\n"
                "# kept comment,,\r\n"
                "Keep,one,neg,my notes\r\n"
                'Broken,"never closed\r\n'
                "Replace,old,old neg,its notes\r\n")
    path.write_bytes(original.encode("utf-8"))
    store = StyleStore(path)
    store.save(Style("Replace", "new", "new neg"))
    store.save(Style("Added", "added", ""))
    text = path.read_bytes().decode("utf-8")
    assert text == ("name,prompt,negative_prompt,description\r\n"
                    "# kept comment,,\r\n"
                    "Keep,one,neg,my notes\r\n"
                    'Broken,"never closed\r\n'
                    "Replace,new,new neg,its notes\r\n"
                    "Added,added,,\r\n")
    assert list(store.styles()) == ["Keep", "Replace", "Added"]
    assert [p.name for p in tmp_path.iterdir()] == ["styles.csv"]  # no temp file left behind


def test_save_adds_a_negative_column_when_the_header_has_none(tmp_path):
    path = tmp_path / "styles.csv"
    path.write_text("name,prompt\nOld,x\n", encoding="utf-8")
    StyleStore(path).save(Style("New", "p", "n"))
    parsed = parse_styles(path.read_text(encoding="utf-8"))
    assert parsed.styles == {"Old": Style("Old", "x", ""), "New": Style("New", "p", "n")} and not parsed.problems


@pytest.mark.parametrize("name", ["", "  ", "#comment", "two\nlines"])
def test_save_refuses_names_a1111_could_not_read_back(tmp_path, name):
    with pytest.raises(ValueError, match="style name"):
        StyleStore(tmp_path / "styles.csv").save(Style(name, "x", ""))
    assert not (tmp_path / "styles.csv").exists()


def test_concurrent_saves_keep_every_style(tmp_path):
    store = StyleStore(tmp_path / "styles.csv")
    threads = [threading.Thread(target=store.save, args=(Style(f"s{i}", f"p{i}", ""),)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(StyleStore(tmp_path / "styles.csv").styles()) == sorted(f"s{i}" for i in range(16))
