//! Inputs the fuzzers (`scripts/fuzz`) found breaking an oracle, each a test named for what
//! broke, so the fix stays.

use dialects::Dialect::{AnthropicMessages as A, OpenAiResponses as R};
use dialects::translate::{self, AnswerContext};

fn cx() -> AnswerContext {
    AnswerContext {
        model: "group".into(),
        created: 1,
        include_usage: true,
        shapes: Default::default(),
    }
}

/// `response_responses`, 8 crashes in 10 million executions: a function call whose arguments
/// hold a number beyond a double's range (`1E1111…`) was embedded raw as the Anthropic tool
/// input, and the translated Messages body could not be read back by a strict JSON parser.
#[test]
fn fuzz_responses_tool_arguments_with_an_out_of_range_number_translate_to_readable_messages() {
    let upstream = br#"{"id":"resp_2","object":"response","status":"incomplete","model":"m","output":[{"type":"function_call","id":"fc_1","call_id":"call_1","name":"shell","arguments":"{\"cmd\":11111111111111E1111111111111111111}"},{"type":"function_call","id":"fc_2","call_id":"call_2","name":"ok","arguments":"{\"n\":1.5}"}],"usage":{"input_tokens":1,"output_tokens":1}}"#;
    let resp = translate::decode_response(R, upstream).unwrap();
    let body = translate::encode_response(A, &resp, &cx());
    let back = translate::decode_response(A, &body).expect("the Messages body reads back");
    let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        v["content"][0]["input"],
        serde_json::json!({}),
        "unreadable input dropped"
    );
    assert_eq!(
        v["content"][1]["input"],
        serde_json::json!({"n": 1.5}),
        "good input kept"
    );
    assert_eq!(back.parts.len(), 2);
}
