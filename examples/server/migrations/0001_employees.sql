-- Employees and their in/out status. AUTOINCREMENT: the id of a deleted employee is never
-- given to a new one, so a cache entry can never come to describe someone else.
CREATE TABLE employees (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    name         TEXT NOT NULL,
    email        TEXT NOT NULL,
    department   TEXT NOT NULL,
    title        TEXT NOT NULL,
    status       TEXT NOT NULL DEFAULT 'out' CHECK (status IN ('in', 'out')),
    status_since TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);

-- GET /departments/{name}/employees lists a department by id.
CREATE INDEX employees_by_department ON employees (department, id);
