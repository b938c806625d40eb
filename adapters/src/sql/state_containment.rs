//! `item_state @> filter` for SQLite, which has no JSON containment operator: the filter becomes
//! nested `EXISTS (SELECT 1 FROM json_each(...))` tests with the semantics of
//! `dpg_core::model::filter::contains`. Every key and value is a bound parameter; only type
//! names and generated aliases are written into the SQL.

use sea_orm::Value as SqlValue;
use serde_json::{Map, Value};

/// SQL text with `?` placeholders and the values to bind, in order.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct SqlFragment {
    pub sql: String,
    pub values: Vec<SqlValue>,
}

/// The condition "the JSON in `column` contains `wanted`".
pub(super) fn sqlite_contains(column: &str, wanted: &Map<String, Value>) -> SqlFragment {
    let mut builder = Builder {
        sql: String::new(),
        values: Vec::new(),
        aliases: 0,
    };
    builder.object(&Node::Column(column), wanted);
    SqlFragment {
        sql: builder.sql,
        values: builder.values,
    }
}

/// A stored JSON value the condition talks about: the column itself, or a row of `json_each`.
enum Node<'a> {
    Column(&'a str),
    Element(String),
}

impl Node<'_> {
    /// `json_type` spelling: null, true, false, integer, real, text, array, object.
    fn json_type(&self) -> String {
        match self {
            Node::Column(column) => format!("json_type({column})"),
            Node::Element(alias) => format!("{alias}.type"),
        }
    }

    /// The JSON text of this node when it is of `kind`, else NULL (so `json_each` never parses
    /// a string's contents as JSON, and never fails on a scalar).
    fn container(&self, kind: &str) -> String {
        match self {
            Node::Column(column) => {
                format!("CASE WHEN json_type({column}) = '{kind}' THEN {column} END")
            }
            Node::Element(alias) => {
                format!("CASE WHEN {alias}.type = '{kind}' THEN {alias}.value END")
            }
        }
    }

    /// The SQL value of a scalar node.
    fn scalar(&self) -> String {
        match self {
            Node::Column(column) => format!("json_extract({column}, '$')"),
            Node::Element(alias) => format!("{alias}.value"),
        }
    }
}

struct Builder {
    sql: String,
    values: Vec<SqlValue>,
    aliases: usize,
}

impl Builder {
    fn next_alias(&mut self) -> String {
        self.aliases += 1;
        format!("state_{}", self.aliases)
    }

    fn bind(&mut self, value: SqlValue) {
        self.sql.push('?');
        self.values.push(value);
    }

    fn value(&mut self, node: &Node, wanted: &Value) {
        match wanted {
            Value::Object(map) => self.object(node, map),
            Value::Array(items) => self.array(node, items),
            Value::String(s) => {
                self.sql.push_str(&format!(
                    "({} = 'text' AND {} = ",
                    node.json_type(),
                    node.scalar()
                ));
                self.bind(SqlValue::from(s.clone()));
                self.sql.push(')');
            }
            Value::Number(n) => {
                // Numerically, like JSONB: 10 and 10.0 are equal.
                self.sql.push_str(&format!(
                    "({} IN ('integer', 'real') AND CAST({} AS REAL) = ",
                    node.json_type(),
                    node.scalar()
                ));
                self.bind(SqlValue::from(n.as_f64()));
                self.sql.push(')');
            }
            Value::Bool(true) => self
                .sql
                .push_str(&format!("({} = 'true')", node.json_type())),
            Value::Bool(false) => self
                .sql
                .push_str(&format!("({} = 'false')", node.json_type())),
            Value::Null => self
                .sql
                .push_str(&format!("({} = 'null')", node.json_type())),
        }
    }

    /// Every wanted key exists and its value contains the wanted value.
    fn object(&mut self, node: &Node, wanted: &Map<String, Value>) {
        self.sql
            .push_str(&format!("({} = 'object'", node.json_type()));
        for (key, value) in wanted {
            let alias = self.next_alias();
            self.sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM json_each({}) AS {alias} WHERE {alias}.key = ",
                node.container("object")
            ));
            self.bind(SqlValue::from(key.clone()));
            self.sql.push_str(" AND ");
            self.value(&Node::Element(alias), value);
            self.sql.push(')');
        }
        self.sql.push(')');
    }

    /// Every wanted element is contained in some stored element.
    fn array(&mut self, node: &Node, wanted: &[Value]) {
        self.sql
            .push_str(&format!("({} = 'array'", node.json_type()));
        for value in wanted {
            let alias = self.next_alias();
            self.sql.push_str(&format!(
                " AND EXISTS (SELECT 1 FROM json_each({}) AS {alias} WHERE ",
                node.container("array")
            ));
            self.value(&Node::Element(alias), value);
            self.sql.push(')');
        }
        self.sql.push(')');
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn build(filter: Value) -> SqlFragment {
        let Value::Object(map) = filter else {
            panic!("filter must be an object")
        };
        sqlite_contains("items.item_state", &map)
    }

    #[test]
    fn keys_and_values_are_bound_never_written() {
        let fragment = build(json!({"it's \"x\"[0].$y": {"'; DROP TABLE items; --": "v'"}}));
        assert!(!fragment.sql.contains("DROP"), "{}", fragment.sql);
        assert!(!fragment.sql.contains("it's"), "{}", fragment.sql);
        assert_eq!(fragment.values.len(), 3);
        assert_eq!(fragment.sql.matches('?').count(), 3);
    }

    #[test]
    fn empty_filter_only_requires_an_object() {
        let fragment = build(json!({}));
        assert_eq!(fragment.sql, "(json_type(items.item_state) = 'object')");
        assert!(fragment.values.is_empty());
    }

    #[test]
    fn every_nested_json_each_has_its_own_alias() {
        let fragment = build(json!({"a": [{"b": 1}, "c"], "d": true}));
        for alias in ["state_1", "state_2", "state_3", "state_4", "state_5"] {
            assert!(
                fragment.sql.contains(&format!("AS {alias} ")),
                "{alias} in {}",
                fragment.sql
            );
        }
        assert!(!fragment.sql.contains("state_6"));
    }
}
