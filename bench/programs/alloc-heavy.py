# SPDX-License-Identifier: MIT
# bench/run-programs, job python: dicts, lists, tuples, strings, a Counter,
# sorting and JSON; make check-override runs it too.
import collections, json, random
random.seed(14)
table = {}
for i in range(100000):
    table["key-%d" % i] = [i, str(i) * 3, (i, float(i) / 7)]
for i in range(0, 100000, 3):
    del table["key-%d" % i]
words = collections.Counter("".join(random.choice("abcdefgh") for _ in range(4))
                            for _ in range(100000))
numbers = sorted(random.random() for _ in range(200000))
text = json.dumps(table)
back = json.loads(text)
parts = [text[i:i + 1000] for i in range(0, len(text), 1000)]
joined = "".join(reversed(parts))
print(len(table), len(text), len(back), len(joined), words.most_common(3))
print(round(sum(numbers), 6), sum(len(v[1]) for v in back.values()))
