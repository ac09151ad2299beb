//! After checking: field accesses on the fixed variables become single variables the evaluator
//! resolves straight from the request (`request.client` -> `\u{2}r1`, `headers["x-region"]`
//! -> `\u{3}0`, `targets["p/m"].healthy` -> `\u{4}3.0`), `has()` on a fixed field becomes
//! `true` (every field is always present), and string literals become variables bound once
//! (`\u{1}N`), so evaluation builds no maps and allocates no literal per request. The tags
//! cannot clash with CEL identifiers (letters, digits, `_`).

use super::{Obj, Schema};
use cel::IdedExpr;
use cel::Value;
use cel::common::ast::{EntryExpr, Expr, operators};
use cel::common::value::CelVal;
use std::sync::Arc;

/// Tag of a string literal made once.
pub(super) const LITERAL: &str = "\u{1}";
/// Tag of a field of `caller` (`c`), `request` (`r`) or `time` (`t`), by index.
pub(super) const FIELD: &str = "\u{2}";
/// Tag of a listed header, by index in the schema.
pub(super) const HEADER: &str = "\u{3}";
/// Tag of a target's field: schema index, `.`, field index.
pub(super) const TARGET: &str = "\u{4}";

/// Rewrites `e` in place; `scope` holds comprehension variables (which shadow the roots).
pub(super) fn rewrite(
    e: &mut IdedExpr,
    schema: &Schema,
    scope: &mut Vec<String>,
    literals: &mut Vec<Value>,
) {
    if let Some(flat) = flatten(&e.expr, schema, scope) {
        e.expr = flat;
        return;
    }
    match &mut e.expr {
        Expr::Literal(CelVal::String(s)) => {
            literals.push(Value::String(Arc::new(std::mem::take(s))));
            e.expr = Expr::Ident(format!("{LITERAL}{}", literals.len() - 1));
        }
        Expr::Call(c) => {
            if let Some(t) = c.target.as_deref_mut() {
                rewrite(t, schema, scope, literals);
            }
            for a in &mut c.args {
                rewrite(a, schema, scope, literals);
            }
        }
        Expr::Select(s) => rewrite(&mut s.operand, schema, scope, literals),
        Expr::List(l) => {
            for x in &mut l.elements {
                rewrite(x, schema, scope, literals);
            }
        }
        Expr::Map(m) => {
            for entry in &mut m.entries {
                if let EntryExpr::MapEntry(me) = &mut entry.expr {
                    rewrite(&mut me.key, schema, scope, literals);
                    rewrite(&mut me.value, schema, scope, literals);
                }
            }
        }
        Expr::Comprehension(c) => {
            rewrite(&mut c.iter_range, schema, scope, literals);
            rewrite(&mut c.accu_init, schema, scope, literals);
            let depth = scope.len();
            scope.push(c.iter_var.clone());
            scope.extend(c.iter_var2.clone());
            scope.push(c.accu_var.clone());
            rewrite(&mut c.loop_cond, schema, scope, literals);
            rewrite(&mut c.loop_step, schema, scope, literals);
            rewrite(&mut c.result, schema, scope, literals);
            scope.truncate(depth);
        }
        _ => {}
    }
}

/// The root variable `e` names, unless a comprehension variable shadows it.
fn root<'e>(e: &'e IdedExpr, scope: &[String]) -> Option<&'e str> {
    match &e.expr {
        Expr::Ident(n) if !scope.iter().any(|s| s == n) => Some(n),
        _ => None,
    }
}

/// `x[<string literal>]` on root `name`: the literal.
fn literal_index<'e>(e: &'e Expr, name: &str, scope: &[String]) -> Option<&'e str> {
    let Expr::Call(c) = e else { return None };
    if c.func_name != operators::INDEX || c.target.is_some() || c.args.len() != 2 {
        return None;
    }
    if root(&c.args[0], scope) != Some(name) {
        return None;
    }
    match &c.args[1].expr {
        Expr::Literal(CelVal::String(s)) => Some(s),
        _ => None,
    }
}

fn flatten(e: &Expr, schema: &Schema, scope: &[String]) -> Option<Expr> {
    match e {
        Expr::Select(s) => {
            if let Some(r) = root(&s.operand, scope) {
                let (tag, obj) = match r {
                    "caller" => ('c', Obj::Caller),
                    "request" => ('r', Obj::Request),
                    "time" => ('t', Obj::Time),
                    _ => return None,
                };
                let i = obj.fields().iter().position(|(n, _)| *n == s.field)?;
                return Some(if s.test {
                    Expr::Literal(CelVal::Boolean(true))
                } else {
                    Expr::Ident(format!("{FIELD}{tag}{i}"))
                });
            }
            let label = literal_index(&s.operand.expr, "targets", scope)?;
            let t = schema.targets.iter().position(|(l, _)| l == label)?;
            let f = Obj::Target
                .fields()
                .iter()
                .position(|(n, _)| *n == s.field)?;
            Some(if s.test {
                Expr::Literal(CelVal::Boolean(true))
            } else {
                Expr::Ident(format!("{TARGET}{t}.{f}"))
            })
        }
        Expr::Call(_) => {
            let h = literal_index(e, "headers", scope)?;
            let lower = h.to_ascii_lowercase();
            let i = schema.headers.iter().position(|x| *x == lower)?;
            Some(Expr::Ident(format!("{HEADER}{i}")))
        }
        _ => None,
    }
}
