-- SPDX-License-Identifier: MIT
-- bench/run-programs, job sqlite: 100,000 rows built, indexed, queried,
-- half deleted and vacuumed; make check-override runs it too.
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 100000)
INSERT INTO t SELECT i, i % 97, 'name-' || (i * 7919 % 100003), i * 0.5 FROM n;
CREATE INDEX t_grp ON t(grp);
CREATE INDEX t_name ON t(name);
SELECT count(*), sum(val) FROM t;
SELECT grp, count(*), round(avg(val), 3) FROM t GROUP BY grp ORDER BY grp LIMIT 5;
SELECT name FROM t WHERE name LIKE 'name-999%' ORDER BY name LIMIT 5;
SELECT count(*) FROM t a JOIN t b ON a.grp = b.grp AND a.id = b.id + 97;
DELETE FROM t WHERE id % 2 = 0;
VACUUM;
SELECT count(*), max(id) FROM t;
PRAGMA integrity_check;
