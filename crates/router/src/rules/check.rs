//! The type checker: walks a parsed CEL expression against the variables rules may read
//! ([`super::Schema`]) and reports, at load, what would otherwise fail per request — an unknown
//! variable, field, header, target or function, an operator applied to the wrong types, an
//! expression that is not a condition.

use super::{Field, Obj, Schema};
use cel::IdedExpr;
use cel::common::ast::{Expr, operators as op};
use cel::common::value::CelVal;

/// A CEL type as far as rules need one.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Ty {
    Bool,
    Int,
    UInt,
    Double,
    Str,
    Bytes,
    Null,
    List(Box<Ty>),
    Map(Box<Ty>, Box<Ty>),
    /// Not known until evaluation (a literal map's values, a comprehension's accumulator).
    Dyn,
    /// One of the fixed objects (`caller`, `request`, `time`, a target).
    Obj(Obj),
    /// `headers`: the listed request headers, by name.
    Headers,
    /// `targets`: per-target state, by `provider/model`.
    Targets,
}

impl Ty {
    fn name(&self) -> String {
        match self {
            Ty::Bool => "bool".into(),
            Ty::Int => "int".into(),
            Ty::UInt => "uint".into(),
            Ty::Double => "double".into(),
            Ty::Str => "string".into(),
            Ty::Bytes => "bytes".into(),
            Ty::Null => "null".into(),
            Ty::List(t) => format!("list({})", t.name()),
            Ty::Map(k, v) => format!("map({}, {})", k.name(), v.name()),
            Ty::Dyn => "dyn".into(),
            Ty::Obj(o) => o.root().to_string(),
            Ty::Headers => "headers".into(),
            Ty::Targets => "targets".into(),
        }
    }

    fn numeric(&self) -> bool {
        matches!(self, Ty::Int | Ty::UInt | Ty::Double | Ty::Dyn)
    }

    /// Whether a value of this type can be compared with `==` to one of `other`.
    fn comparable(&self, other: &Ty) -> bool {
        match (self, other) {
            (Ty::Dyn, _) | (_, Ty::Dyn) | (Ty::Null, _) | (_, Ty::Null) => true,
            (a, b) if a.numeric() && b.numeric() => true,
            (Ty::List(a), Ty::List(b)) => a.comparable(b),
            (Ty::Map(..), Ty::Map(..)) => true,
            (a, b) => a == b && !matches!(a, Ty::Obj(_) | Ty::Headers | Ty::Targets),
        }
    }
}

impl From<Field> for Ty {
    fn from(f: Field) -> Ty {
        match f {
            Field::Bool => Ty::Bool,
            Field::Int => Ty::Int,
            Field::Double => Ty::Double,
            Field::Str => Ty::Str,
        }
    }
}

/// Walks one expression; `scope` holds comprehension variables (innermost last).
pub(super) struct Checker<'a> {
    pub(super) schema: &'a Schema,
    scope: Vec<(String, Ty)>,
}

type Checked = Result<Ty, String>;

impl<'a> Checker<'a> {
    pub(super) fn new(schema: &'a Schema) -> Self {
        Checker {
            schema,
            scope: Vec::new(),
        }
    }

    pub(super) fn check(&mut self, e: &IdedExpr) -> Checked {
        match &e.expr {
            Expr::Literal(v) => Ok(match v {
                CelVal::Boolean(_) => Ty::Bool,
                CelVal::Int(_) => Ty::Int,
                CelVal::UInt(_) => Ty::UInt,
                CelVal::Double(_) => Ty::Double,
                CelVal::String(_) => Ty::Str,
                CelVal::Bytes(_) => Ty::Bytes,
                CelVal::Null => Ty::Null,
                _ => Ty::Dyn,
            }),
            Expr::Ident(name) => self.ident(name),
            Expr::Select(s) => {
                if s.test {
                    // `has(x.f)`: the field must exist for objects; anything on maps.
                    self.select(&s.operand, &s.field)?;
                    return Ok(Ty::Bool);
                }
                self.select(&s.operand, &s.field)
            }
            Expr::Call(c) => self.call(&c.func_name, c.target.as_deref(), &c.args),
            Expr::List(l) => {
                let mut elem = None;
                for x in &l.elements {
                    let t = self.value(x)?;
                    elem = Some(match elem {
                        None => t,
                        Some(prev) if prev == t => prev,
                        Some(_) => Ty::Dyn,
                    });
                }
                Ok(Ty::List(Box::new(elem.unwrap_or(Ty::Dyn))))
            }
            Expr::Map(m) => {
                for entry in &m.entries {
                    if let cel::common::ast::EntryExpr::MapEntry(me) = &entry.expr {
                        self.value(&me.key)?;
                        self.value(&me.value)?;
                    }
                }
                Ok(Ty::Map(Box::new(Ty::Dyn), Box::new(Ty::Dyn)))
            }
            Expr::Comprehension(c) => {
                let range = self.check(&c.iter_range)?;
                let elem = match &range {
                    Ty::List(t) => (**t).clone(),
                    Ty::Map(k, _) => (**k).clone(),
                    Ty::Headers | Ty::Targets => Ty::Str,
                    Ty::Dyn => Ty::Dyn,
                    other => {
                        return Err(format!(
                            "a macro ranges over a list or a map, not {}",
                            other.name()
                        ));
                    }
                };
                self.check(&c.accu_init)?;
                self.scope.push((c.iter_var.clone(), elem));
                if let Some(v2) = &c.iter_var2 {
                    self.scope.push((v2.clone(), Ty::Dyn));
                }
                self.scope.push((c.accu_var.clone(), Ty::Dyn));
                let result = (|| {
                    self.check(&c.loop_cond)?;
                    self.check(&c.loop_step)?;
                    self.check(&c.result)
                })();
                self.scope.pop();
                if c.iter_var2.is_some() {
                    self.scope.pop();
                }
                self.scope.pop();
                result
            }
            Expr::Struct(s) => Err(format!(
                "message literals ({}{{...}}) are not supported",
                s.type_name
            )),
            Expr::Unspecified => Err("an empty expression".into()),
        }
    }

    /// Checks an expression used as a value (not a bare object).
    fn value(&mut self, e: &IdedExpr) -> Checked {
        let t = self.check(e)?;
        match t {
            Ty::Obj(o) => Err(format!(
                "`{}` is an object: use one of its fields ({})",
                o.root(),
                o.fields()
                    .iter()
                    .map(|(f, _)| format!("{}.{f}", o.root()))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
            t => Ok(t),
        }
    }

    fn ident(&mut self, name: &str) -> Checked {
        if let Some((_, t)) = self.scope.iter().rev().find(|(n, _)| n == name) {
            return Ok(t.clone());
        }
        match name {
            "caller" => Ok(Ty::Obj(Obj::Caller)),
            "request" => Ok(Ty::Obj(Obj::Request)),
            "time" => Ok(Ty::Obj(Obj::Time)),
            "headers" => Ok(Ty::Headers),
            "targets" => Ok(Ty::Targets),
            _ => Err(format!(
                "unknown variable `{name}` (rules read caller, request, headers, time and targets)"
            )),
        }
    }

    fn select(&mut self, operand: &IdedExpr, field: &str) -> Checked {
        let t = self.check(operand)?;
        match t {
            Ty::Obj(o) => {
                let Some((_, f)) = o.fields().iter().find(|(n, _)| *n == field) else {
                    let names: Vec<&str> = o.fields().iter().map(|(n, _)| *n).collect();
                    let hint = crate::spelling::suggest(field, names.iter().copied())
                        .map(|s| format!("; did you mean `{s}`?"))
                        .unwrap_or_default();
                    return Err(format!(
                        "`{}` has no field `{field}` (fields: {}){hint}",
                        o.root(),
                        names.join(", ")
                    ));
                };
                Ok((*f).into())
            }
            Ty::Headers => self.header(field),
            Ty::Targets => self.target(field),
            Ty::Map(_, v) => Ok(*v),
            Ty::Dyn => Ok(Ty::Dyn),
            other => Err(format!("`.{field}` on a {}", other.name())),
        }
    }

    fn header(&mut self, name: &str) -> Checked {
        let lower = name.to_ascii_lowercase();
        match self.schema.headers.iter().position(|h| *h == lower) {
            Some(_) => Ok(Ty::Str),
            None => Err(format!(
                "header `{name}` is not in rules_headers ({}); rules see only the headers listed there",
                if self.schema.headers.is_empty() {
                    "empty".to_string()
                } else {
                    self.schema.headers.join(", ")
                }
            )),
        }
    }

    fn target(&mut self, label: &str) -> Checked {
        match self.schema.targets.iter().position(|(l, _)| l == label) {
            Some(_) => Ok(Ty::Obj(Obj::Target)),
            None => Err(format!(
                "no target `{label}` (targets are named provider/model){}",
                crate::spelling::suggest(
                    label,
                    self.schema.targets.iter().map(|(l, _)| l.as_str())
                )
                .map(|s| format!("; did you mean `{s}`?"))
                .unwrap_or_default()
            )),
        }
    }

    fn call(&mut self, f: &str, target: Option<&IdedExpr>, args: &[IdedExpr]) -> Checked {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!("`{f}` takes {n} argument(s), not {}", args.len()))
            }
        };
        match f {
            op::LOGICAL_AND | op::LOGICAL_OR | op::LOGICAL_NOT | op::NOT_STRICTLY_FALSE => {
                for a in args {
                    let t = self.value(a)?;
                    if !matches!(t, Ty::Bool | Ty::Dyn) {
                        return Err(format!(
                            "`{}` needs conditions, got a {}",
                            op_name(f),
                            t.name()
                        ));
                    }
                }
                Ok(Ty::Bool)
            }
            op::EQUALS | op::NOT_EQUALS => {
                arity(2)?;
                let (a, b) = (self.value(&args[0])?, self.value(&args[1])?);
                if !a.comparable(&b) {
                    return Err(format!(
                        "`{}` compares a {} with a {}",
                        op_name(f),
                        a.name(),
                        b.name()
                    ));
                }
                Ok(Ty::Bool)
            }
            op::LESS | op::LESS_EQUALS | op::GREATER | op::GREATER_EQUALS => {
                arity(2)?;
                let (a, b) = (self.value(&args[0])?, self.value(&args[1])?);
                let ok = (a.numeric() && b.numeric())
                    || matches!(
                        (&a, &b),
                        (Ty::Str, Ty::Str) | (Ty::Dyn, Ty::Str) | (Ty::Str, Ty::Dyn)
                    );
                if !ok {
                    return Err(format!(
                        "`{}` orders numbers or strings, not a {} and a {}",
                        op_name(f),
                        a.name(),
                        b.name()
                    ));
                }
                Ok(Ty::Bool)
            }
            op::ADD | op::SUBSTRACT | op::MULTIPLY | op::DIVIDE | op::MODULO => {
                arity(2)?;
                let (a, b) = (self.value(&args[0])?, self.value(&args[1])?);
                match (&a, &b) {
                    (Ty::Dyn, t) | (t, Ty::Dyn) if t.numeric() || f == op::ADD => Ok(Ty::Dyn),
                    (x, y) if x == y && x.numeric() => Ok(a),
                    (Ty::Str, Ty::Str) | (Ty::List(_), Ty::List(_)) if f == op::ADD => Ok(a),
                    _ => Err(format!(
                        "`{}` on a {} and a {}",
                        op_name(f),
                        a.name(),
                        b.name()
                    )),
                }
            }
            op::NEGATE => {
                arity(1)?;
                let a = self.value(&args[0])?;
                if !a.numeric() {
                    return Err(format!("`-` on a {}", a.name()));
                }
                Ok(a)
            }
            op::CONDITIONAL => {
                arity(3)?;
                let c = self.value(&args[0])?;
                if !matches!(c, Ty::Bool | Ty::Dyn) {
                    return Err(format!("`? :` needs a condition, got a {}", c.name()));
                }
                let (a, b) = (self.value(&args[1])?, self.value(&args[2])?);
                Ok(if a == b { a } else { Ty::Dyn })
            }
            op::INDEX => {
                arity(2)?;
                let on = self.check(&args[0])?;
                let key = &args[1];
                let literal = match &key.expr {
                    Expr::Literal(CelVal::String(s)) => Some(s.clone()),
                    _ => None,
                };
                match on {
                    Ty::Headers => match literal {
                        Some(s) => self.header(&s),
                        None => {
                            self.value(key)?;
                            Ok(Ty::Str)
                        }
                    },
                    Ty::Targets => match literal {
                        Some(s) => self.target(&s),
                        None => {
                            self.value(key)?;
                            Ok(Ty::Obj(Obj::Target))
                        }
                    },
                    Ty::List(t) => {
                        let k = self.value(key)?;
                        if !matches!(k, Ty::Int | Ty::UInt | Ty::Dyn) {
                            return Err(format!("a list is indexed by an int, not a {}", k.name()));
                        }
                        Ok(*t)
                    }
                    Ty::Map(_, v) => {
                        self.value(key)?;
                        Ok(*v)
                    }
                    Ty::Dyn => {
                        self.value(key)?;
                        Ok(Ty::Dyn)
                    }
                    Ty::Obj(o) => Err(format!(
                        "`{}` is an object: read its fields with `.`, not `[...]`",
                        o.root()
                    )),
                    other => Err(format!("`[...]` on a {}", other.name())),
                }
            }
            op::IN => {
                arity(2)?;
                let needle = self.value(&args[0])?;
                let hay = self.check(&args[1])?;
                match hay {
                    Ty::Headers | Ty::Targets | Ty::List(_) | Ty::Map(..) | Ty::Dyn => {}
                    other => {
                        return Err(format!(
                            "`in` needs a list or a map, not a {}",
                            other.name()
                        ));
                    }
                }
                let _ = needle;
                Ok(Ty::Bool)
            }
            "size" => {
                let on = match (target, args) {
                    (Some(t), []) => t,
                    (None, [a]) => a,
                    _ => return Err("`size` takes one value".into()),
                };
                let t = self.check(on)?;
                match t {
                    Ty::Headers
                    | Ty::Targets
                    | Ty::Str
                    | Ty::Bytes
                    | Ty::List(_)
                    | Ty::Map(..)
                    | Ty::Dyn => {}
                    other => return Err(format!("`size` of a {}", other.name())),
                }
                Ok(Ty::Int)
            }
            "contains" | "startsWith" | "endsWith" => {
                let Some(t) = target else {
                    return Err(format!("`{f}` is a method: write text.{f}(\"...\")"));
                };
                arity(1)?;
                let (a, b) = (self.value(t)?, self.value(&args[0])?);
                if !matches!(a, Ty::Str | Ty::Dyn) || !matches!(b, Ty::Str | Ty::Dyn) {
                    return Err(format!(
                        "`{f}` works on strings, not a {} and a {}",
                        a.name(),
                        b.name()
                    ));
                }
                Ok(Ty::Bool)
            }
            "int" | "uint" | "double" | "string" => {
                arity(1)?;
                if target.is_some() {
                    return Err(format!("`{f}` is a function: write {f}(x)"));
                }
                let a = self.value(&args[0])?;
                if matches!(a, Ty::List(_) | Ty::Map(..) | Ty::Headers | Ty::Targets) {
                    return Err(format!("`{f}` of a {}", a.name()));
                }
                Ok(match f {
                    "int" => Ty::Int,
                    "uint" => Ty::UInt,
                    "double" => Ty::Double,
                    _ => Ty::Str,
                })
            }
            "max" | "min" => {
                let mut out = None;
                for a in args {
                    let t = self.value(a)?;
                    if !t.numeric() {
                        return Err(format!("`{f}` of a {}", t.name()));
                    }
                    out = Some(match out {
                        None => t,
                        Some(p) if p == t => p,
                        Some(_) => Ty::Dyn,
                    });
                }
                out.ok_or_else(|| format!("`{f}` needs at least one argument"))
            }
            other => Err(format!(
                "unknown function `{other}` (rules have size, contains, startsWith, endsWith, int, uint, double, string, max, min, has, all, exists, exists_one, map, filter)"
            )),
        }
    }
}

/// An operator's spelling in the source (`_&&_` -> `&&`).
fn op_name(f: &str) -> &str {
    f.trim_matches('_')
        .trim_start_matches('@')
        .trim_end_matches('_')
}
