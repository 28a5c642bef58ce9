//! Queries on the wire: conditions, aggregations, orders and positions between their
//! protobuf messages and `ringdb-query`'s types, one mapping for the node and the client.
//!
//! Invariants kept here:
//! - decoding never panics: a bad path, operator, operand or aggregation is an
//!   [`InvalidArgument`] naming the condition (by its place, from 1) and what is wrong;
//! - encoding then decoding gives back an equal filter, spec, order and position;
//! - operands travel as JSON text, each a scalar (objects and arrays are refused, as the
//!   grammar refuses them).

use ringdb_proto::v1::{
    AggregateFunc, ConditionOp, QueryAggregation, QueryCondition, QueryPosition,
};
use ringdb_query::aggregate::{Arg, Func};
use ringdb_query::{AggregateSpec, Aggregation, Condition, Filter, Op, Order, Path, Position};
use serde_json::Value;

use crate::error::InvalidArgument;

fn invalid(m: String) -> InvalidArgument {
    InvalidArgument::new(m)
}

/// A filter's conditions as protobuf messages, in the order written.
pub fn conditions_to_proto(filter: &Filter) -> Vec<QueryCondition> {
    filter
        .conditions()
        .iter()
        .map(|c| {
            let op = match c.op() {
                Op::Eq(_) => ConditionOp::Eq,
                Op::Ne(_) => ConditionOp::Ne,
                Op::Lt(_) => ConditionOp::Lt,
                Op::Le(_) => ConditionOp::Le,
                Op::Gt(_) => ConditionOp::Gt,
                Op::Ge(_) => ConditionOp::Ge,
                Op::In(_) => ConditionOp::In,
                Op::Exists => ConditionOp::Exists,
            };
            QueryCondition {
                path: c.path().to_string(),
                op: op as i32,
                operands: c
                    .op()
                    .operands()
                    .iter()
                    .map(|o| o.to_string().into_bytes().into())
                    .collect(),
            }
        })
        .collect()
}

/// A filter from protobuf conditions (none: every document matches).
pub fn filter_from_proto(conditions: &[QueryCondition]) -> Result<Filter, InvalidArgument> {
    let mut out = Vec::with_capacity(conditions.len());
    for (i, c) in conditions.iter().enumerate() {
        out.push(condition(c).map_err(|m| invalid(format!("condition {}: {m}", i + 1)))?);
    }
    Ok(Filter::new(out))
}

fn condition(c: &QueryCondition) -> Result<Condition, String> {
    let path = Path::parse(&c.path).map_err(|e| format!("path {:?}: {e}", c.path))?;
    let mut operands = Vec::with_capacity(c.operands.len());
    for raw in &c.operands {
        let v: Value = serde_json::from_slice(raw).map_err(|e| {
            format!(
                "operand {:?} is not JSON ({e}); write strings in double quotes",
                String::from_utf8_lossy(raw)
            )
        })?;
        operands.push(v);
    }
    let op = ConditionOp::try_from(c.op).map_err(|_| format!("unknown operator {}", c.op))?;
    let one = |mut operands: Vec<Value>, symbol: &str| -> Result<Value, String> {
        if operands.len() == 1 {
            Ok(operands.remove(0))
        } else {
            Err(format!(
                "{path} {symbol} takes exactly one operand, not {}",
                operands.len()
            ))
        }
    };
    let op = match op {
        ConditionOp::Unspecified => return Err(format!("{path}: the operator is not set")),
        ConditionOp::Eq => Op::Eq(one(operands, "=")?),
        ConditionOp::Ne => Op::Ne(one(operands, "!=")?),
        ConditionOp::Lt => Op::Lt(one(operands, "<")?),
        ConditionOp::Le => Op::Le(one(operands, "<=")?),
        ConditionOp::Gt => Op::Gt(one(operands, ">")?),
        ConditionOp::Ge => Op::Ge(one(operands, ">=")?),
        ConditionOp::In => Op::In(operands),
        ConditionOp::Exists if operands.is_empty() => Op::Exists,
        ConditionOp::Exists => return Err(format!("{path} EXISTS takes no operand")),
    };
    Condition::new(path, op).map_err(|e| e.to_string())
}

/// `FIELDS` paths from their text.
pub fn fields_from_proto(fields: &[String]) -> Result<Vec<Path>, InvalidArgument> {
    fields
        .iter()
        .map(|f| Path::parse(f).map_err(|e| invalid(format!("field {f:?}: {e}"))))
        .collect()
}

/// An aggregation spec as protobuf aggregations and a `GROUP BY` path (empty: none).
pub fn spec_to_proto(spec: &AggregateSpec) -> (Vec<QueryAggregation>, String) {
    let aggregations = spec
        .aggregations()
        .iter()
        .map(|a| QueryAggregation {
            func: match a.func() {
                Func::Count => AggregateFunc::Count,
                Func::Sum => AggregateFunc::Sum,
                Func::Avg => AggregateFunc::Avg,
                Func::Min => AggregateFunc::Min,
                Func::Max => AggregateFunc::Max,
            } as i32,
            path: match a.arg() {
                Arg::Star => "*".to_string(),
                Arg::Path(p) => p.to_string(),
            },
        })
        .collect();
    let group_by = spec.group_by().map(Path::to_string).unwrap_or_default();
    (aggregations, group_by)
}

/// An aggregation spec from protobuf aggregations and a `GROUP BY` path (empty: none).
pub fn spec_from_proto(
    aggregations: &[QueryAggregation],
    group_by: &str,
) -> Result<AggregateSpec, InvalidArgument> {
    let mut out = Vec::with_capacity(aggregations.len());
    for (i, a) in aggregations.iter().enumerate() {
        let at = |m: String| invalid(format!("aggregation {}: {m}", i + 1));
        let func = match AggregateFunc::try_from(a.func) {
            Ok(AggregateFunc::Count) => Func::Count,
            Ok(AggregateFunc::Sum) => Func::Sum,
            Ok(AggregateFunc::Avg) => Func::Avg,
            Ok(AggregateFunc::Min) => Func::Min,
            Ok(AggregateFunc::Max) => Func::Max,
            Ok(AggregateFunc::Unspecified) => return Err(at("the function is not set".into())),
            Err(_) => return Err(at(format!("unknown function {}", a.func))),
        };
        let arg = if a.path.trim() == "*" {
            Arg::Star
        } else {
            Arg::Path(Path::parse(&a.path).map_err(|e| at(format!("path {:?}: {e}", a.path)))?)
        };
        out.push(Aggregation::new(func, arg).map_err(|e| at(e.to_string()))?);
    }
    let group_by = if group_by.is_empty() {
        None
    } else {
        Some(Path::parse(group_by).map_err(|e| invalid(format!("GROUP BY {group_by:?}: {e}")))?)
    };
    AggregateSpec::new(out, group_by).map_err(|e| invalid(e.to_string()))
}

/// An order on the wire: 0 by key, `i + 1` by condition `i`.
pub fn order_to_wire(order: Order) -> u32 {
    match order {
        Order::Key => 0,
        Order::Condition(i) => u32::try_from(i).map_or(u32::MAX, |i| i.saturating_add(1)),
    }
}

/// An order from the wire; it must name a condition of `filter`.
pub fn order_from_wire(order: u32, filter: &Filter) -> Result<Order, InvalidArgument> {
    match order {
        0 => Ok(Order::Key),
        i if (i as usize) <= filter.conditions().len() => Ok(Order::Condition(i as usize - 1)),
        i => Err(invalid(format!(
            "order by condition {i} of a filter of {} conditions",
            filter.conditions().len()
        ))),
    }
}

/// A position on the wire.
pub fn position_to_proto(p: &Position) -> QueryPosition {
    QueryPosition {
        value: p
            .encoded_value()
            .map(|v| v.to_vec())
            .unwrap_or_default()
            .into(),
        key: p.key().to_string(),
    }
}

/// A position from the wire (an empty value: ordered by key), checked to fit `order`.
pub fn position_from_proto(p: &QueryPosition, order: Order) -> Result<Position, InvalidArgument> {
    let value = match order {
        Order::Key if p.value.is_empty() => None,
        Order::Condition(_) if !p.value.is_empty() => Some(p.value.to_vec()),
        _ => {
            return Err(invalid(
                "the position does not fit the query's order".to_string(),
            ))
        }
    };
    Position::from_encoded(value, p.key.clone()).map_err(|e| invalid(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ringdb_query::statement::{parse, parse_conditions, Statement};

    #[test]
    fn filters_and_specs_round_trip() {
        let f = parse_conditions(
            r#"a.b = 1.5 AND tags[] IN ("x", null, true) AND "first name" EXISTS AND n != "s" AND x < 2 AND y <= 3 AND z > -1 AND w >= 0"#,
        )
        .unwrap();
        assert_eq!(filter_from_proto(&conditions_to_proto(&f)).unwrap(), f);
        let Statement::Aggregate(a) =
            parse("AGGREGATE c count(*), avg(age), min(x.y) GROUP BY tags[]").unwrap()
        else {
            panic!("an aggregate")
        };
        let (aggs, group_by) = spec_to_proto(&a.spec);
        assert_eq!(group_by, "tags[]");
        assert_eq!(spec_from_proto(&aggs, &group_by).unwrap(), a.spec);
        for order in [Order::Key, Order::Condition(0), Order::Condition(7)] {
            assert_eq!(order_from_wire(order_to_wire(order), &f).unwrap(), order);
        }
        assert!(order_from_wire(9, &f).is_err());
        let p = Position::new(Some(&serde_json::json!(2)), "k");
        let back = position_from_proto(&position_to_proto(&p), Order::Condition(0)).unwrap();
        assert_eq!(back, p);
        assert!(position_from_proto(&position_to_proto(&p), Order::Key).is_err());
    }

    #[test]
    fn bad_conditions_are_named() {
        let c = |path: &str, op: ConditionOp, operands: &[&str]| QueryCondition {
            path: path.into(),
            op: op as i32,
            operands: operands
                .iter()
                .map(|o| o.as_bytes().to_vec().into())
                .collect(),
        };
        let err = |cs: Vec<QueryCondition>| filter_from_proto(&cs).unwrap_err().into_message();
        let ok = c("a", ConditionOp::Eq, &["1"]);
        assert!(err(vec![ok.clone(), c("a..b", ConditionOp::Eq, &["1"])])
            .starts_with("condition 2: path"));
        assert!(err(vec![c("a", ConditionOp::Eq, &["abc"])]).contains("not JSON"));
        assert!(err(vec![c("a", ConditionOp::Eq, &["{}"])]).contains("object"));
        assert!(err(vec![c("a", ConditionOp::Eq, &["1", "2"])]).contains("exactly one"));
        assert!(err(vec![c("a", ConditionOp::In, &[])]).contains("at least one"));
        assert!(err(vec![c("a", ConditionOp::Exists, &["1"])]).contains("no operand"));
        assert!(err(vec![c("a", ConditionOp::Unspecified, &["1"])]).contains("not set"));
        let mut unknown = ok;
        unknown.op = 99;
        assert!(err(vec![unknown]).contains("unknown operator"));
        let agg = |func: AggregateFunc, path: &str| QueryAggregation {
            func: func as i32,
            path: path.into(),
        };
        let spec_err = |aggs: Vec<QueryAggregation>, g: &str| {
            spec_from_proto(&aggs, g).unwrap_err().into_message()
        };
        assert!(spec_err(vec![agg(AggregateFunc::Sum, "*")], "").contains("only count"));
        assert!(spec_err(vec![], "").contains("at least one"));
        assert!(spec_err(vec![agg(AggregateFunc::Count, "*")], "a..").contains("GROUP BY"));
        assert!(spec_err(
            vec![
                agg(AggregateFunc::Count, "*"),
                agg(AggregateFunc::Count, "*")
            ],
            ""
        )
        .contains("twice"));
    }
}
