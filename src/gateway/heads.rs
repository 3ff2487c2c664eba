//! Pingora's request and response headers seen through the policy's traits. Edits go through
//! Pingora's own methods, which keep its header-case map in step.

use crate::policy::exchange::{HeadMut, RequestHead, ResponseHead};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri, Version};
use pingora::http::{RequestHeader, ResponseHeader};

impl HeadMut for RequestHeader {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = RequestHeader::append_header(self, name, value);
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = RequestHeader::insert_header(self, name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        let _ = RequestHeader::remove_header(self, name);
    }
}

impl RequestHead for RequestHeader {
    fn method(&self) -> &Method {
        &self.method
    }
    fn uri(&self) -> &Uri {
        &self.uri
    }
    fn version(&self) -> Version {
        self.version
    }
}

impl HeadMut for ResponseHeader {
    fn headers(&self) -> &HeaderMap {
        &self.headers
    }
    fn append_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = ResponseHeader::append_header(self, name, value);
    }
    fn insert_header(&mut self, name: HeaderName, value: HeaderValue) {
        let _ = ResponseHeader::insert_header(self, name, value);
    }
    fn remove_header(&mut self, name: &HeaderName) {
        let _ = ResponseHeader::remove_header(self, name);
    }
}

impl ResponseHead for ResponseHeader {
    fn status(&self) -> StatusCode {
        self.status
    }
}
